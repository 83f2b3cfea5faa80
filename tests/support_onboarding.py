"""Shared steps of the connector and onboarding stories (00b, 02, 02b, 13), through the real API.

Sources are real: the sample ERP written to a SQLite file, the sample CRM served over
loopback HTTP (``serve_crm``).
"""

from __future__ import annotations

from pathlib import Path

from keel.samples import erp
from keel.samples.crm import CrmServer
from tests.support import World

SMALL_ERP = erp.ErpSpec(months=2, customers=12, vendors=4, invoices_per_month=40)
ERP_STREAMS = ["customers", "invoices", "payments", "vendors"]
# The Raw contract the handshake compares the ERP's invoices with.
INVOICES_CONTRACT = {
    "row_id": "integer",
    "invoice_id": "string",
    "customer_id": "string",
    "issued_at": "date",
    "amount_net": "decimal",
    "currency": "string",
    "updated_at": "date-time",
}


def write_erp(directory: Path, spec: erp.ErpSpec = SMALL_ERP) -> tuple[str, dict[str, int]]:
    """The sample ERP in a SQLite file of ``directory``; its URL and row counts per table."""
    url = f"sqlite:///{directory / 'erp.db'}"
    return url, erp.write(spec, url)


def api(tenant: str) -> str:
    return f"/api/v1/tenants/{tenant}"


def deploy(world: World, slug: str, template: str, name: str) -> dict:
    answer = world.post(
        "PA", f"{api(world.tenants[slug])}/connectors", json={"template": template, "name": name}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def configure(world: World, slug: str, connector_id: str, config: dict, who: str = "DE"):
    return world.put(
        f"{slug}:{who}",
        f"{api(world.tenants[slug])}/connectors/{connector_id}/configuration",
        {"config": config},
    )


def step(world: World, who: str, slug: str, path: str, json: dict | None = None) -> dict:
    answer = world.post(who, f"{api(world.tenants[slug])}{path}", json=json)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def active_connector(world: World, slug: str, template: str, name: str, config: dict) -> dict:
    """Deploy (PA) → configure (DE) → secrets validated (SA) → preflight (PA): ACTIVE."""
    connector = deploy(world, slug, template, name)
    cid = connector["connector_id"]
    answer = configure(world, slug, cid, config)
    assert answer.status_code == 200, answer.text
    step(world, "SA", slug, f"/connectors/{cid}/secret-validation")
    done = step(world, "PA", slug, f"/connectors/{cid}/preflight")
    assert done["status"] == "ACTIVE", done
    return done


def ready_source(
    world: World, slug: str, connector_id: str, name: str, streams: list[str], expected: dict | None = None
) -> dict:
    """Request (DE) → register (PA) → validate (SA) → preflight (PA) → handshake (PA): READY."""
    body = {"name": name, "streams": streams, "justification": "needed for DSO", "connector_id": connector_id}
    if expected:
        body["expected_schemas"] = expected
    source = step(world, f"{slug}:DE", slug, "/sources", body)
    sid = source["source_id"]
    step(world, "PA", slug, f"/sources/{sid}/registration")
    step(world, "SA", slug, f"/sources/{sid}/validation")
    assert step(world, "PA", slug, f"/sources/{sid}/preflight")["status"] == "ACTIVE"
    done = step(world, "PA", slug, f"/sources/{sid}/handshake")
    assert done["status"] == "READY", done
    return done


def erp_config(url: str) -> dict:
    return {"url": url}


def crm_config(server: CrmServer, token: str | None = None) -> dict:
    return {"base_url": server.url, "auth": {"type": "bearer", "token": token or server.api_key}}


class FlakyGateway:
    """A real loopback HTTP server in front of the sample CRM that can fail on command.

    ``fail_next(n)`` answers the next ``n`` requests with 503; ``down()`` answers every
    request with 503 until ``up()``; ``drop_next(n)`` closes the connection without an
    answer (a dropped connection); ``deny()`` answers 401 (a revoked key). Everything
    else is forwarded to the CRM unchanged.
    """

    def __init__(self, crm: CrmServer) -> None:
        import threading
        import urllib.error
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        gateway = self
        self.crm = crm
        self.failures = 0
        self.drops = 0
        self.is_down = False
        self.denying = False
        self.served = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with gateway.lock:
                    gateway.served += 1
                    drop = gateway.drops > 0
                    gateway.drops -= int(drop)
                    fail = gateway.is_down or gateway.failures > 0
                    gateway.failures -= int(gateway.failures > 0 and not gateway.is_down)
                    deny = gateway.denying
                if deny:  # the source revoked the key
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "invalid_key"}')
                    return
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "unavailable"}')
                    return
                upstream = urllib.request.Request(crm.url + self.path, headers=dict(self.headers))
                try:
                    with urllib.request.urlopen(upstream, timeout=10) as answer:
                        status, body = answer.status, answer.read()
                except urllib.error.HTTPError as refused:  # 401, 404 ...: passed on as they are
                    status, body = refused.code, refused.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, n: int) -> None:
        with self.lock:
            self.failures = n

    def drop_next(self, n: int) -> None:
        with self.lock:
            self.drops = n

    def deny(self) -> None:
        """Answer 401 from now on, as a source does after revoking a key."""
        with self.lock:
            self.denying = True

    def down(self) -> None:
        with self.lock:
            self.is_down = True

    def up(self) -> None:
        with self.lock:
            self.is_down = False

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def erp_ready(world: World, slug: str, directory: Path) -> tuple[str, dict[str, int], dict]:
    """The sample ERP in ``directory`` behind an ACTIVE erp-sql connector and a READY source of all
    its streams (invoices checked against ``INVOICES_CONTRACT``): (URL, row counts, source)."""
    url, counts = write_erp(directory)
    connector = active_connector(world, slug, "erp-sql", "ERP", erp_config(url))
    source = ready_source(
        world, slug, connector["connector_id"], "ERP", ERP_STREAMS, {"invoices": INVOICES_CONTRACT}
    )
    return url, counts, source
