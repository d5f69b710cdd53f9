"""Provider tokens and connection credentials of the second corpus."""

from __future__ import annotations

import random
import string

from doc import Doc, surround
from families import KINDS, _new
from shapes import assign, b64
from values import ALNUM, B64, HEX, PROVIDERS, jwt_token, password, pick

# provider -> the variable name projects give it (words)
_VAR = {
    "aws-key-id": ["aws", "access", "key", "id"],
    "aws-secret": ["aws", "secret", "access", "key"],
    "github-classic": ["github", "token"],
    "github-oauth": ["gh", "oauth", "token"],
    "github-fine": ["github", "pat"],
    "gitlab-pat": ["gitlab", "token"],
    "slack-bot": ["slack", "bot", "token"],
    "stripe-live": ["stripe", "secret", "key"],
    "openai": ["openai", "api", "key"],
    "anthropic": ["anthropic", "api", "key"],
    "google-api": ["google", "maps", "key"],
    "sendgrid": ["sendgrid", "api", "key"],
    "npm": ["npm", "token"],
    "facebook-token": ["fb", "access", "token"],
    "sourcegraph": ["src", "access", "token"],
    "newrelic-user": ["new", "relic", "api", "key"],
    "newrelic-license": ["new", "relic", "license", "key"],
    "telegram": ["telegram", "bot", "token"],
    "square": ["square", "access", "token"],
    "square-oauth": ["square", "oauth", "secret"],
    "mapbox": ["mapbox", "token"],
    "teams-webhook": ["teams", "webhook", "url"],
    "bitbucket-dc": ["bitbucket", "token"],
    "databricks": ["databricks", "token"],
    "shopify": ["shopify", "access", "token"],
    "atlassian": ["jira", "api", "token"],
    "vault-service": ["vault", "token"],
    "vault-batch": ["bao", "token"],
    "vault-legacy": ["vault", "token"],
    "sentry-org": ["sentry", "auth", "token"],
    "alibaba-id": ["alibaba", "access", "key", "id"],
    "tencent-id": ["tencent", "secret", "id"],
    "dingtalk-hook": ["dingtalk", "webhook"],
    "feishu-hook": ["feishu", "webhook"],
    "wecom-hook": ["wecom", "webhook"],
    "pypi": ["pypi", "token"],
    "hf": ["hf", "token"],
    "twilio": ["twilio", "api", "key"],
}
NEW = {
    "facebook-token",
    "sourcegraph",
    "newrelic-user",
    "newrelic-license",
    "telegram",
    "square",
    "square-oauth",
    "mapbox",
    "teams-webhook",
    "bitbucket-dc",
    "databricks",
    "shopify",
    "atlassian",
    "vault-service",
    "vault-batch",
    "vault-legacy",
    "sentry-org",
}


def _name_gated(rng: random.Random) -> list[tuple[list[str], str]]:
    """Providers whose keys have no prefix: recognisable by the name only."""
    return [
        (["datadog", "api", "key"], pick(rng, HEX, 32)),
        (["dd", "app", "key"], pick(rng, HEX, 40)),
        (["zendesk", "api", "token"], pick(rng, ALNUM, 40)),
        (["twitch", "client", "secret"], pick(rng, string.ascii_lowercase + string.digits, 30)),
        (["facebook", "app", "secret"], pick(rng, HEX, 32)),
        (["alibaba", "access", "key", "secret"], pick(rng, ALNUM, 30)),
        (["tencent", "secret", "key"], pick(rng, ALNUM, 32)),
    ]


def providers(rng: random.Random) -> list[Doc]:
    """Provider-issued tokens in assignments of every language (new and classic ones)."""
    docs: list[Doc] = []
    index = 0
    for family, wanted in (("providers", NEW), ("classic", set(PROVIDERS) - NEW)):
        items = [(name, _VAR[name], PROVIDERS[name]) for name in sorted(wanted)]
        plants = [(words, make(rng), name) for _ in range(3) for name, words, make in items]
        if family == "providers":
            plants += [(words, value, "name-gated") for _ in range(2) for words, value in _name_gated(rng)]
        rng.shuffle(plants)
        for start in range(0, len(plants), 4):
            kind = KINDS[index % len(KINDS)]
            index += 1
            doc = _new(docs, family, kind, index)
            body: list[tuple[str, str | None]] = [(assign(kind, w, v, rng), s) for w, v, s in plants[start : start + 4]]
            surround(doc, kind, rng, body)
    for number in range(4):
        doc = _new(docs, "providers", "json", number, "appsettings")
        account = pick(rng, string.ascii_lowercase, 10)
        doc.add("{", '  "Logging": { "LogLevel": { "Default": "Information" } },', '  "Storage": {')
        doc.secret(
            f'    "Connection": "DefaultEndpointsProtocol=https;AccountName={account};'
            f'AccountKey={pick(rng, B64, 86)}==;EndpointSuffix=core.windows.net",',
            "azure-storage",
        )
        sig = pick(rng, ALNUM, 40) + "%2B" + pick(rng, ALNUM, 3) + "%3D"
        doc.secret(
            f'    "ExportUrl": "https://{account}.blob.core.windows.net/exports?sv=2022-11-02&ss=b&srt=co'
            f'&sp=rl&se=2027-01-01T00:00:00Z&spr=https&sig={sig}"',
            "azure-sas",
        )
        doc.add("  }", "}")
        doc = _new(docs, "providers", "py", number, "sentry")
        surround(
            doc,
            "py",
            rng,
            [
                (
                    f'sentry_sdk.init(dsn="https://{pick(rng, HEX, 32)}:{pick(rng, HEX, 32)}'
                    f'@o{rng.randint(10**5, 10**6)}.ingest.sentry.io/{rng.randint(10**6, 10**7)}")',
                    "sentry-dsn-secret",
                )
            ],
        )
    return docs


def connections(rng: random.Random) -> list[Doc]:
    """Connection strings, URIs, HTTP auth on command lines and credential files."""
    docs: list[Doc] = []
    hosts = ["db.internal", "10.0.3.12", "pg-prod.acme.io", "cache.acme.io", "mq.internal"]
    uris = [
        lambda p: f"postgresql://billing:{p}@{rng.choice(hosts)}:5432/billing",
        lambda p: f"postgres://app:{p}@{rng.choice(hosts)}/app?sslmode=require",
        lambda p: f"mysql://shop:{p}@{rng.choice(hosts)}:3306/shop",
        lambda p: f"mysql+pymysql://shop:{p}@{rng.choice(hosts)}/shop",
        lambda p: f"redis://:{p}@{rng.choice(hosts)}:6379/0",
        lambda p: f"rediss://default:{p}@{rng.choice(hosts)}:6380",
        lambda p: f"mongodb+srv://api:{p}@cluster0.{pick(rng, string.ascii_lowercase, 5)}.mongodb.net/prod",
        lambda p: f"amqp://worker:{p}@{rng.choice(hosts)}:5672/jobs",
    ]
    for index in range(12):
        kind = ["py", "env", "yaml", "js", "go", "rb"][index % 6]
        doc = _new(docs, "connections", kind, index, "dsn")
        body = [(assign(kind, ["database", "url"], make(password(rng)), rng), "uri") for make in rng.sample(uris, 2)]
        surround(doc, kind, rng, body)
    for index in range(4):
        doc = _new(docs, "connections", "json", index, "appsettings")
        doc.add("{", '  "ConnectionStrings": {')
        doc.secret(
            f'    "Default": "Server=tcp:sql-{index}.database.windows.net,1433;Initial Catalog=billing;'
            f'User ID=billing;Password={password(rng)};Encrypt=True;"',
            "ado-net",
        )
        doc.add("  }", "}")
        doc = _new(docs, "connections", "props", index, "jdbc")
        doc.secret(
            f"db.url=jdbc:sqlserver://sql.internal:1433;databaseName=app;user=app;password={password(rng)}", "jdbc"
        )
        doc.secret(f"odbc=Driver={{PostgreSQL Unicode}};Server=pg;Database=app;Uid=app;Pwd={password(rng)};", "odbc")
    for index in range(4):
        doc = _new(docs, "connections", "sh", index, "api")
        doc.add("#!/usr/bin/env bash", "set -e")
        doc.secret(f"curl -u deploy:{password(rng)} https://nexus.acme.io/service/rest/v1/status", "curl-u")
        doc.secret(f'curl -H "Authorization: Bearer {pick(rng, ALNUM, 40)}" https://api.acme.io/v2/jobs', "bearer")
        doc.secret(
            f"curl --header 'Authorization: Basic {b64('ci:' + password(rng))}' https://artifacts.acme.io", "basic"
        )
        doc.secret(f'http GET https://api.acme.io/me "Authorization: Token {pick(rng, HEX, 40)}"', "token-scheme")
        doc.secret(f"curl -H 'Authorization: Bearer {jwt_token(rng)}' https://api.acme.io/v2/me", "bearer-jwt")
    for index in range(3):
        doc = _new(docs, "connections", "plain", index, "npmrc")
        doc.path = f"connections/pkg{index}/.npmrc"
        doc.add("registry=https://npm.acme.io/")
        doc.secret(f"//npm.acme.io/:_authToken={pick(rng, ALNUM + '-', 36)}", "npmrc-token")
        doc.secret(f"//npm.pkg.acme.io/:_auth={b64('ci:' + password(rng))}", "npmrc-auth")
        doc = _new(docs, "connections", "plain", index, "pypirc")
        doc.path = f"connections/pkg{index}/.pypirc"
        doc.add(
            "[distutils]",
            "index-servers = internal",
            "",
            "[internal]",
            "repository = https://pypi.acme.io/",
            "username = ci",
        )
        doc.secret(f"password = {password(rng)}", "pypirc")
        doc = _new(docs, "connections", "plain", index, "netrc")
        doc.path = f"connections/home{index}/.netrc"
        doc.secret(f"machine git.acme.io login deploy password {password(rng)}", "netrc")
        doc = _new(docs, "connections", "json", index, "docker")
        doc.path = f"connections/docker{index}/config.json"
        doc.add("{", '  "auths": {', '    "registry.acme.io": {')
        doc.secret(f'      "auth": "{b64("robot$ci:" + pick(rng, ALNUM, 32))}"', "docker-auth")
        doc.add("    }", "  }", "}")
    return docs
