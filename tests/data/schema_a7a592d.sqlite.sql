-- The conversation store, operator and Telegram tables as create_all made them at commit a7a592d
-- (before Alembic): tests/test_migrations.py upgrades a database built from this DDL.
CREATE TABLE sessions (
	id VARCHAR(64) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	external_key VARCHAR(128), 
	language VARCHAR(2), 
	created_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	expired BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_sessions_external_key ON sessions (external_key);

CREATE INDEX ix_sessions_last_seen_at ON sessions (last_seen_at);

CREATE TABLE messages (
	id VARCHAR(64) NOT NULL, 
	session_id VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	text TEXT NOT NULL, 
	language VARCHAR(2), 
	answered BOOLEAN, 
	intent VARCHAR(16), 
	mode VARCHAR(16), 
	retrieval_query TEXT, 
	sources JSON, 
	reply_to VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(session_id) REFERENCES sessions (id) ON DELETE CASCADE
);

CREATE INDEX ix_messages_created_at ON messages (created_at);

CREATE INDEX ix_messages_session_id ON messages (session_id);

CREATE TABLE feedback (
	id INTEGER NOT NULL, 
	session_id VARCHAR(64) NOT NULL, 
	message_id VARCHAR(64) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	rating INTEGER NOT NULL, 
	comment TEXT, 
	created_at DATETIME NOT NULL, 
	reviewed BOOLEAN NOT NULL, 
	reviewed_at DATETIME, 
	reviewed_by VARCHAR(64), 
	PRIMARY KEY (id), 
	FOREIGN KEY(session_id) REFERENCES sessions (id) ON DELETE CASCADE, 
	FOREIGN KEY(message_id) REFERENCES messages (id) ON DELETE CASCADE
);

CREATE INDEX ix_feedback_created_at ON feedback (created_at);

CREATE INDEX ix_feedback_message_id ON feedback (message_id);

CREATE INDEX ix_feedback_session_id ON feedback (session_id);

CREATE TABLE operator_audit (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	action VARCHAR(48) NOT NULL, 
	detail JSON, 
	ip VARCHAR(64), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_operator_audit_action ON operator_audit (action);

CREATE INDEX ix_operator_audit_at ON operator_audit (at);

CREATE INDEX ix_operator_audit_username ON operator_audit (username);

CREATE TABLE operator_handled_questions (
	message_id VARCHAR(64) NOT NULL, 
	handled_by VARCHAR(64) NOT NULL, 
	handled_at DATETIME NOT NULL, 
	note TEXT, 
	PRIMARY KEY (message_id)
);

CREATE TABLE operator_login_state (
	username VARCHAR(64) NOT NULL, 
	failures INTEGER NOT NULL, 
	locked_until DATETIME, 
	PRIMARY KEY (username)
);

CREATE TABLE operator_sessions (
	token_hash VARCHAR(64) NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (token_hash)
);

CREATE INDEX ix_operator_sessions_username ON operator_sessions (username);

CREATE TABLE operators (
	username VARCHAR(64) NOT NULL, 
	password_hash VARCHAR(255) NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (username)
);

CREATE TABLE telegram_chats (
	"key" VARCHAR(128) NOT NULL, 
	language VARCHAR(2), 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
