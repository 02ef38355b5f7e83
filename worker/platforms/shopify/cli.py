"""``stores add shopify`` (``add_shopify``): a Shopify shop whose points live in Appstle.

One store serves both receivers: Shopify's order and customer webhooks
(``/webhooks/shopify``, signed with the app's client secret or the shop's own
``--webhook-secret``) and Appstle's loyalty webhooks
(``/webhooks/appstle/<shop>``, signed with the ``whsec_`` secret Appstle shows
per endpoint, ``--appstle-webhook-secret``). Secrets are stored encrypted and
never printed. Giving a secret option again replaces that list (pass both the
new and the old secret while a sender rotates); leaving it out keeps it.
"""

from __future__ import annotations

import re
from typing import Any

import click

from worker.cli.kit import check_timezone, check_url, save
from worker.platforms.appstle.webhooks import SECRETS_KEY as APPSTLE_SECRETS
from worker.platforms.base import StoreUpdate
from worker.platforms.shopify.client import API_KEY
from worker.platforms.shopify.identity import shop_domain
from worker.signing import SECRET_PREFIX, InvalidSecret, decode_secret
from worker.stores import ACTIVE

LOCALE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,4})?")


def _shop(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    domain = shop_domain(value)
    if domain is None:
        raise click.BadParameter(f"{value!r} is not a shop domain like my-shop.myshopify.com")
    return domain


def _one_word(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    text = value.strip()
    if not text or any(character.isspace() for character in text):
        raise click.BadParameter("must be one word, not empty", param=param)
    return text


def _words(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    return [_one_word(ctx, param, value) for value in values]


def _whsec(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """Standard Webhooks secrets, stored in their ``whsec_<base64>`` form."""
    secrets = []
    for value in _words(ctx, param, values):
        try:
            decode_secret(value)
        except InvalidSecret as exc:
            raise click.BadParameter(str(exc), param=param) from None
        secrets.append(SECRET_PREFIX + value.removeprefix(SECRET_PREFIX))
    return secrets


def _locale(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (len(value) > 8 or not LOCALE.fullmatch(value)):
        raise click.BadParameter(f"{value!r} is not a language tag like en or pt-BR")
    return value


@click.command("shopify")
@click.option("--shop", required=True, callback=_shop, help="my-shop.myshopify.com")
@click.option(
    "--appstle-api-key",
    envvar="APPSTLE_API_KEY",
    show_envvar=True,
    required=True,
    callback=_one_word,
    help="Appstle X-API-Key.",
)
@click.option("--appstle-api-base", callback=check_url, help="Default: APPSTLE_API_BASE.")
@click.option(
    "--webhook-secret",
    multiple=True,
    callback=_words,
    help="This shop's own Shopify client secret(s), overriding SHOPIFY_CLIENT_SECRET.",
)
@click.option(
    "--appstle-webhook-secret",
    multiple=True,
    callback=_whsec,
    help="whsec_… secret(s) of the Appstle webhook endpoint (Svix).",
)
@click.option("--name")
@click.option(
    "--timezone",
    callback=check_timezone,
    help="Store time zone (set it: the default is RELAY_DEFAULT_TIMEZONE).",
)
@click.option("--locale", callback=_locale, help="Default customer language, e.g. en.")
def add_shopify(
    shop: str,
    appstle_api_key: str,
    appstle_api_base: str | None,
    webhook_secret: list[str],
    appstle_webhook_secret: list[str],
    name: str | None,
    timezone: str | None,
    locale: str | None,
) -> None:
    """Register a Shopify shop whose loyalty points live in Appstle."""
    credentials: dict[str, Any] = {API_KEY: appstle_api_key}
    if webhook_secret:
        credentials["webhook_secrets"] = webhook_secret
    if appstle_webhook_secret:
        credentials[APPSTLE_SECRETS] = appstle_webhook_secret
    update = StoreUpdate(status=ACTIVE, credentials=credentials)
    fields = {"api_base": appstle_api_base, "name": name, "timezone": timezone, "locale": locale}
    save("shopify", shop, update, fields)
