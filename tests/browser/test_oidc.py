"""Single sign-on: with an ``[auth]`` section in the secrets, Streamlit's own OpenID Connect sign-in is used.

A real (small, local) identity provider signs people in; the studio maps the signed-in e-mail to an
account: a known e-mail opens its workspaces, an unknown one is told to ask an administrator.
"""

from __future__ import annotations

import secrets

import pytest

from core.accounts import Accounts
from tests.browser.studio import chromium_pages, free_port, running_studio, settle, shot
from tests.oidc_provider import TinyOIDCProvider
from tests.signin import PASSWORD

pytestmark = pytest.mark.browser


def test_company_sign_in_maps_the_e_mail_to_an_account(isolated_data_dir, tmp_path):
    accounts = Accounts()
    accounts.add_user("root", PASSWORD)
    accounts.add_workspace("acme", title="Acme Shoes")
    accounts.add_user("sam", None, email="sam@agency.com", role="editor", workspace="acme")
    port = free_port()
    with TinyOIDCProvider("mosaic-studio", "s3cret") as idp:
        secrets_file = tmp_path / "secrets.toml"
        secrets_file.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\n'
            'client_id = "mosaic-studio"\n'
            'client_secret = "s3cret"\n'
            f'server_metadata_url = "{idp.metadata_url}"\n',
            encoding="utf-8",
        )
        args = ("--secrets.files", str(secrets_file))
        with running_studio(isolated_data_dir, port=port, extra_args=args) as url, chromium_pages(2) as (sam, eve):
            sam.goto(url)
            sam.get_by_text("Sign in with your company account").wait_for()
            settle(sam)
            assert sam.get_by_label("Password", exact=True).count() == 0  # no password form with single sign-on
            shot(sam, "oidc_01_sign_in")
            idp.email = "sam@agency.com"
            sam.get_by_role("button", name="Sign in").click()
            sam.get_by_text("Signed in as sam").wait_for()
            settle(sam)
            text = sam.locator("body").inner_text()
            assert "Acme Shoes" in text and "editor" in text
            shot(sam, "oidc_02_signed_in")

            eve.goto(url)
            eve.get_by_text("Sign in with your company account").wait_for()
            idp.email = "eve@elsewhere.com"
            eve.get_by_role("button", name="Sign in").click()
            eve.get_by_text("No account in this studio uses eve@elsewhere.com").wait_for()
            settle(eve)
            text = eve.locator("body").inner_text()
            for hidden in ("Gallery", "Generate", "Signed in as"):
                assert hidden not in text
