"""The URP operator back office, the domain side of the console in api/operator/: accounts and login
(accounts.py), the audit log (audit.py), document jobs (documents.py), passage search (search.py), reply
drafts (drafts.py), reports as data (reports.py) and translation drafting (translate.py). No HTML here:
highlighting, charts and CSV are api/operator/present.py."""
