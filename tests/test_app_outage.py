"""A real outage: PostgreSQL refuses connections while a rater answers, then comes back.

A local TCP proxy in front of the server stands for the database: ``down()`` stops
listening and cuts every open connection (connections are refused), ``up()`` forwards
again. The answer given during the outage is kept in the session and stored once
when the database is back, whatever failed first (the read of the next item, the
submit, the connection).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from rlcomposer.feedback import database
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySpec, create_study
from rlcomposer.feedback.testing import (
    throwaway_postgres,
)
from rlcomposer.music.melody import random_melody

APP = str(Path(__file__).resolve().parent.parent / "feedback_app" / "app.py")

class OutageProxy:
    """Forwards 127.0.0.1:<port> to the database server until ``down()``; ``up()`` again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
            except OSError:
                pass
            listener.close()
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass


@pytest.fixture
def proxied_postgres(monkeypatch, postgres_server):
    with throwaway_postgres(postgres_server, prefix="rlc_app_outage") as direct_url:
        parsed = make_url(direct_url)
        proxy = OutageProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        for name in ("RLCOMPOSER_ACCESS_CODE", "RLCOMPOSER_ADMIN_PASSWORD", "RLCOMPOSER_POOL_TAGS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", url)
        store = open_store(url)
        rng = np.random.default_rng(3)
        store.add_melodies([random_melody(rng, 32) for _ in range(6)], "pool")
        create_study(store, StudySpec(name="outage", mode="stars", items_per_rater=4, repeat_share=0.0,
                                      listen_fraction=0.5))
        try:
            yield store, proxy
        finally:
            proxy.up() if proxy._listener is None else None
            database.dispose_engine(url)
            proxy.down()


def test_an_answer_given_while_postgresql_refuses_connections_is_stored_once_it_is_back(proxied_postgres):
    store, proxy = proxied_postgres
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = "outage"
    at.run()
    at.text_input[0].input("Olga")
    at.checkbox[0].check()
    at.button[0].click().run()
    entry = at.session_state["pending"]
    at.session_state["player-melody"] = {"item": entry["client_id"], "played_ms": 7000, "heard": True}
    at.run()
    assert not at.exception and not at.error

    proxy.down()  # PostgreSQL refuses connections from now on
    next(b for b in at.button if b.key.startswith("answer-stars-5-")).click().run()
    assert not at.exception
    assert "not saved yet" in at.error[0].value and "Nothing you entered is lost" in at.error[0].value
    assert [b.label for b in at.button] == ["Send again"]
    at.button(key="resend").click().run()  # still down: still kept, nothing else happens
    assert "not saved yet" in at.error[0].value
    assert len(at.session_state["unsent"]) == 1

    proxy.up()  # it is back: the next rerun sends the answer by itself
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [rating] = store.ratings()
    assert (rating.stars, rating.client_id, rating.listened_ms) == (5, entry["client_id"], 7000)
    assert at.session_state["unsent"] == []
    at.run()  # and it is not sent twice
    assert len(store.ratings()) == 1
