"""A portal server process: `python -m keyline.portal_process`, started by `keyline serve`.

gevent's monkey patching has to come before anything imports ``socket``, ``threading`` or
psycopg (which picks its wait function when imported), so the portal's production server
(portal/server.py) runs in a fresh interpreter whose first act is to patch, never in the
process that started the store and the services. Its settings, the database URL and the
listening socket come from `keyline serve` (keyline.wiring.start_portal_process): see
keyline.wiring.serve_portal_process. Nothing here is meant to be imported.
"""

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

    import sys

    from keyline.wiring import serve_portal_process

    sys.exit(serve_portal_process(sys.stdin.read()))
