"""moto's server, answering one request at a time.

moto's backends are not thread-safe: a DynamoDB transaction that fails restores a
deep copy of the whole table taken when it began, which can undo or resurrect the
writes of a transaction running at the same time on another server thread (seen
as a loser's item surviving twenty concurrent registrations, and as 500s with
"dictionary changed size during iteration"). DynamoDB itself has no such race.
This keeps moto's threaded server (so keep-alive connections never block one
another) but runs the application under one lock, which makes every request
atomic, as each request is on the real service.

Usage: python scripts/moto_server.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # Produce the whole body inside the lock: responses may be lazy.
            return list(app(environ, start_response))

    run_simple(host, port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
