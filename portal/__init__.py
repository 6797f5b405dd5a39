"""Portal: the web application every user sees (Flask, Jinja, Socket.IO, REST API)."""
