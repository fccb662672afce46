"""The plugin marketplace: submissions, downloads, Stripe Connect payouts."""

from __future__ import annotations

from .environment import env

# MARKETPLACE (plugin submissions, staff review, catalog, Stripe Connect revenue share)
# ------------------------------------------------------------------------------
# Largest plugin package (a zip) accepted; bigger uploads stop as soon as they pass it (413).
MARKETPLACE_PACKAGE_MAX_BYTES = env.int("MARKETPLACE_PACKAGE_MAX_BYTES", default=20 * 1024 * 1024)
# Highest plugin price in cents of BILLING_CURRENCY (the lowest paid price is Stripe's 50).
MARKETPLACE_MAX_PRICE_CENTS = env.int("MARKETPLACE_MAX_PRICE_CENTS", default=50_000)
# Lifetime of a package download link (signed token, or S3 presigned URL), seconds.
MARKETPLACE_DOWNLOAD_URL_MAX_AGE = env.int("MARKETPLACE_DOWNLOAD_URL_MAX_AGE", default=300)
# Where Stripe Connect onboarding sends the developer back to (done) or to restart (link expired).
MARKETPLACE_CONNECT_RETURN_URL = env(
    "MARKETPLACE_CONNECT_RETURN_URL", default="https://adiuva.app/developer/connect/done"
)
MARKETPLACE_CONNECT_REFRESH_URL = env(
    "MARKETPLACE_CONNECT_REFRESH_URL", default="https://adiuva.app/developer/connect/retry"
)
