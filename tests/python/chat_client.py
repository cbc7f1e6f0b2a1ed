"""A stock python-socketio client going through the chat contract once.

Connects with the token in $TOKEN over one transport, waits for the history, sends a message
(ack by callback), waits for its broadcast, sends a bad payload (ack by ``call``) and waits for
the ``error`` event, then disconnects and prints one JSON line of what it saw. Exits 1 with the
reason on stderr when something is missing, late, or a handler raised.

    TOKEN=... /usr/bin/python3 tests/python/chat_client.py http://127.0.0.1:3000 --transport polling
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

import socketio


class Failure(Exception):
    """What went wrong, in words for the test's failure message."""


class Observed:
    """Everything the handlers record, behind one condition so the main thread can wait on it."""

    def __init__(self):
        self.changed = threading.Condition()
        self.loads = []
        self.loaded = None
        self.errors = []
        self.ack = None
        # python-socketio only logs what a handler or callback raises: keep it to fail on.
        self.raised = []

    def record(self, update):
        with self.changed:
            update()
            self.changed.notify_all()

    def wait_for(self, condition, what, deadline):
        with self.changed:
            while not condition():
                if self.raised:
                    raise Failure("a handler raised: " + "; ".join(self.raised))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("timed out waiting for " + what)
                self.changed.wait(left)


class RecordErrors(logging.Handler):
    """Turns error log lines of python-socketio and python-engineio into failures."""

    def __init__(self, observed):
        super().__init__(logging.ERROR)
        self.observed = observed

    def emit(self, record):
        line = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {record.exc_info[1]!r}"
        self.observed.record(lambda: self.observed.raised.append(line))


def run(url, token, transport, timeout):
    observed = Observed()
    deadline = time.monotonic() + timeout
    recorder = RecordErrors(observed)
    for name in ("socketio.client", "engineio.client"):
        logging.getLogger(name).addHandler(recorder)
    # Events are handled on background threads: an exception there never reaches the logs.
    threading.excepthook = lambda hook: observed.record(
        lambda: observed.raised.append(f"{hook.exc_type.__name__}: {hook.exc_value}")
    )

    sio = socketio.Client(reconnection=False)

    @sio.on("load")
    def on_load(messages):
        observed.record(lambda: observed.loads.append(messages))

    @sio.on("loaded")
    def on_loaded(info):
        def update():
            observed.loaded = info

        observed.record(update)

    @sio.on("error")
    def on_error(error):
        observed.record(lambda: observed.errors.append(error))

    def on_ack(result):
        def update():
            observed.ack = result

        observed.record(update)

    try:
        sio.connect(url, auth={"token": token}, transports=[transport], wait_timeout=timeout)
    except socketio.exceptions.ConnectionError as error:
        logged = "".join(f"; {line}" for line in observed.raised)
        raise Failure(f"could not connect: {error}{logged}") from error
    try:
        observed.wait_for(
            lambda: observed.loaded is not None and observed.loads, "the history", deadline
        )
        # Nothing else is sent before our own message, so every load so far is history.
        history_frames = len(observed.loads)
        history = [message for frame in observed.loads for message in frame]

        sio.emit("message", {"message": f"hello over {transport}"}, callback=on_ack)
        observed.wait_for(lambda: observed.ack is not None, "the message ack", deadline)
        ack = observed.ack
        if not ack.get("ok"):
            raise Failure(f"the message was refused: {ack}")
        stored_id = ack["message"]["id"]

        def broadcast():
            for frame in observed.loads[history_frames:]:
                if any(message["id"] == stored_id for message in frame):
                    return frame
            return None

        observed.wait_for(lambda: broadcast() is not None, "the broadcast of our message", deadline)

        left = max(0, deadline - time.monotonic())
        try:
            bad_ack = sio.call("message", {"message": 42}, timeout=left)
        except socketio.exceptions.TimeoutError as error:
            raise Failure("timed out waiting for the bad payload's ack") from error
        observed.wait_for(lambda: observed.errors, "the error event", deadline)
        if observed.raised:
            raise Failure("a handler raised: " + "; ".join(observed.raised))
        return {
            "transport": sio.transport(),
            "history": history,
            "historyFrames": history_frames,
            "loaded": observed.loaded,
            "ack": ack,
            "broadcast": broadcast(),
            "badAck": bad_ack,
            "errors": observed.errors,
        }
    finally:
        sio.disconnect()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--transport", choices=["polling", "websocket"], default="websocket")
    parser.add_argument("--timeout", type=float, default=10, help="seconds for the whole run")
    args = parser.parse_args()
    token = os.environ.get("TOKEN")
    if not token:
        parser.error("set TOKEN to a chat token")
    try:
        observed = run(args.url, token, args.transport, args.timeout)
    except Failure as failure:
        print(f"chat_client ({args.transport}): {failure}", file=sys.stderr)
        return 1
    print(json.dumps(observed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
