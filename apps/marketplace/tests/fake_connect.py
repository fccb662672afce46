"""The billing tests' fake Stripe, extended for Connect: accounts, account links, payment intents,
charges (refunds), disputes and payouts, plus helpers that move them as Stripe would."""

from __future__ import annotations

import time
from typing import Any

from apps.billing.tests.fake_stripe import FakeStripe, new_id

CONNECT_KINDS = ("accounts", "account_links", "payment_intents", "charges", "disputes", "payouts")


# Stripe's test card that succeeds on-session but asks the bank's authentication off-session.
AUTHENTICATION_REQUIRED_PM = "pm_card_authenticationRequired"


class FakeConnectStripe(FakeStripe):
    def __init__(self) -> None:
        super().__init__()
        for kind in CONNECT_KINDS:
            self.objects[kind] = {}

    def card_on_file(self, customer_id: str, payment_method: str = "pm_card_visa") -> None:
        """The customer saved a card as their default (as a paid subscription's checkout leaves it)."""
        self.objects["customers"][customer_id]["invoice_settings"] = {"default_payment_method": payment_method}

    def route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        if method == "POST" and path.rstrip("/") == "/v1/payment_intents" and params.get("confirm") == "true":
            return self._confirm_on_create(params)
        return super().route(method, path, params)

    def _confirm_on_create(self, params: dict) -> tuple[int, dict]:
        """A PaymentIntent created with confirm=true: charged at once, or a 402 card error carrying the
        intent when the bank asks for authentication (as Stripe answers off-session charges)."""
        intent = self._create("payment_intents", params)
        if params.get("payment_method") == AUTHENTICATION_REQUIRED_PM:
            intent["status"] = "requires_action"
            error = {
                "type": "card_error",
                "code": "authentication_required",
                "message": "This payment requires authentication.",
                "payment_intent": intent,
            }
            return 402, {"error": error}
        return 200, self.payment_succeed(intent["id"])

    def _create(self, kind: str, params: dict) -> dict:
        params.pop("expand", None)
        if kind == "accounts":
            return self._base(
                kind,
                "acct",
                object="account",
                type=params.get("type", "express"),
                email=params.get("email"),
                metadata=params.get("metadata", {}),
                charges_enabled=False,
                payouts_enabled=False,
                details_submitted=False,
                country="DE",
                default_currency="eur",
                capabilities=dict.fromkeys(params.get("capabilities", {}), "inactive"),
                requirements={"currently_due": ["external_account"], "disabled_reason": None},
                settings={},
                business_profile={},
                tos_acceptance={},
            )
        if kind == "account_links":
            obj = self._base(kind, "acctlink", object="account_link", expires_at=int(time.time()) + 300)
            obj["url"] = f"https://connect.stripe.test/setup/e/{params['account']}/{obj['id']}"
            return obj
        if kind == "payment_intents":
            obj = self._base(
                kind,
                "pi",
                object="payment_intent",
                amount=int(params["amount"]),
                amount_received=0,
                currency=params["currency"],
                customer=params.get("customer"),
                description=params.get("description"),
                application_fee_amount=int(params["application_fee_amount"]),
                transfer_data={"destination": params["transfer_data"]["destination"]},
                metadata=params.get("metadata", {}),
                status="requires_payment_method",
                latest_charge=None,
                payment_method=None,
                payment_method_types=["card"],
                capture_method="automatic",
                confirmation_method="automatic",
                on_behalf_of=None,
            )
            obj["client_secret"] = f"{obj['id']}_secret_fake"
            return obj
        return super()._create(kind, params)

    # --- Stripe's side of things happening -----------------------------------------------------

    def account_enable(self, account_id: str) -> dict:
        account = self.objects["accounts"][account_id]
        account.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
        account["requirements"] = {"currently_due": [], "disabled_reason": None}
        return account

    def payment_succeed(self, intent_id: str) -> dict:
        """The customer paid: a charge exists and the intent succeeded."""
        intent = self.objects["payment_intents"][intent_id]
        charge = self._base(
            "charges",
            "ch",
            object="charge",
            amount=intent["amount"],
            amount_captured=intent["amount"],
            amount_refunded=0,
            refunded=False,
            captured=True,
            paid=True,
            status="succeeded",
            currency=intent["currency"],
            customer=intent["customer"],
            payment_intent=intent_id,
            application_fee_amount=intent["application_fee_amount"],
            transfer_data=intent["transfer_data"],
            balance_transaction=None,
            payment_method=None,
            disputed=False,
            refunds={"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"},
        )
        intent.update(status="succeeded", latest_charge=charge["id"], amount_received=intent["amount"])
        return intent

    def refund(self, charge_id: str, amount: int) -> dict:
        charge = self.objects["charges"][charge_id]
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"]["data"].append(
            {
                "id": new_id("re"),
                "object": "refund",
                "amount": amount,
                "charge": charge_id,
                "currency": charge["currency"],
                "payment_intent": charge["payment_intent"],
                "status": "succeeded",
                "reason": "requested_by_customer",
                "created": int(time.time()),
                "metadata": {},
                "balance_transaction": None,
            }
        )
        return charge

    def dispute(self, charge_id: str, amount: int | None = None) -> dict:
        charge = self.objects["charges"][charge_id]
        charge["disputed"] = True
        return self._base(
            "disputes",
            "dp",
            object="dispute",
            amount=charge["amount"] if amount is None else amount,
            charge=charge_id,
            payment_intent=charge["payment_intent"],
            currency=charge["currency"],
            reason="fraudulent",
            status="needs_response",
            balance_transactions=[],
            evidence={},
            evidence_details={"due_by": int(time.time()) + 86400, "has_evidence": False, "past_due": False},
            is_charge_refundable=False,
        )

    def payout(self, account_id: str, amount: int) -> dict:
        return self._base(
            "payouts",
            "po",
            object="payout",
            amount=amount,
            currency="eur",
            status="paid",
            arrival_date=int(time.time()),
            automatic=True,
            destination=None,
            balance_transaction=None,
            method="standard",
            type="bank_account",
            source_type="card",
        )

    def connect_event(self, event_type: str, obj: dict, *, account: str, **kwargs: Any) -> dict:
        event = self.event(event_type, obj, **kwargs)
        event["account"] = account
        return event
