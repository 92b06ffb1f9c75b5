"""The bot's handlers, one module per concern; bot/app.py registers them on the Application.

commands.py: /start /help /lingua /language /urp and unknown commands; messages.py: text questions and
non-text messages; callbacks.py: the inline buttons (sources, feedback, suggestions); errors.py: the
error handler. common.py holds what they share (the chat's language, sending HTML).
"""
