"""Bill a customer through a flaky payment gateway, with a retry controller around the charge.

    python examples/billing_retry.py

The charge is a subflow with a ``Times`` retry controller: when the gateway times out, the
subflow's atoms are reverted and it runs again (after a short, growing delay), up to three
attempts. The invoice opened before the charge is outside the subflow, so a retry leaves it alone.
When every attempt fails the controller gives up and the whole flow is reverted: the invoice is
voided, and ``run()`` raises the gateway's own exception.
"""

from __future__ import annotations

from flowkit import Flow, LinearFlow, Task, engines, retry


class GatewayTimeout(Exception):
    """The payment gateway did not answer in time (worth another try)."""


class Gateway:
    """A stand-in payment gateway that times out on the first ``failures`` charges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def charge(self, card: str, cents: int) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            print(f"  gateway: timeout on call {self.calls}")
            raise GatewayTimeout(f"gateway timed out charging {card} (call {self.calls})")
        return f"ch_{self.calls:03d}"


class OpenInvoice(Task):
    default_provides = "invoice"

    def execute(self, customer: str, cents: int) -> str:
        print(f"open invoice for {customer}: {cents / 100:.2f} EUR")
        return f"inv-{customer}"

    def revert(self, result: str, **kwargs: object) -> None:
        # result: what execute returned
        print(f"void invoice {result}")


class Authorize(Task):
    default_provides = "authorization"

    def execute(self, card: str, cents: int, attempt: int) -> str:
        print(f"  attempt {attempt}: authorize {cents / 100:.2f} EUR on {card}")
        return f"auth-{attempt}"

    def revert(self, result: str, **kwargs: object) -> None:
        print(f"  release authorization {result}")


class Charge(Task):
    default_provides = "charge_id"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__("charge")
        self.gateway = gateway

    def execute(self, card: str, cents: int, authorization: str) -> str:
        charge_id = self.gateway.charge(card, cents)
        print(f"  charged {charge_id} against {authorization}")
        return charge_id


class SendReceipt(Task):
    def execute(self, customer: str, invoice: str, charge_id: str) -> None:
        print(f"receipt to {customer}: {invoice} paid by {charge_id}")


def make_billing_flow(gateway: Gateway) -> Flow:
    # Up to 3 attempts; 0.05 s before the second, 0.1 s before the third (backoff 2).
    controller = retry.Times(3, name="retry-charge", provides="attempt", delay=0.05, backoff=2.0)
    charge = LinearFlow("charge", retry=controller).add(Authorize("authorize"), Charge(gateway))
    return LinearFlow("bill").add(OpenInvoice("open-invoice"), charge, SendReceipt("send-receipt"))


def bill(failures: int) -> None:
    store = {"customer": "acme", "card": "4242", "cents": 1999}
    try:
        result = engines.run(make_billing_flow(Gateway(failures)), store=store)
        print(f"paid after {result['attempt']} attempt(s)")
    except GatewayTimeout as exc:
        print(f"gave up, everything reverted: {exc}")


if __name__ == "__main__":
    print("== the gateway times out twice, then answers ==")
    bill(failures=2)
    print("== the gateway never answers ==")
    bill(failures=99)
