"""The second corpus, family by family: each function writes the positive files of one
family (credentials in the shapes real repositories hold them) into a list of Docs."""

from __future__ import annotations

import random
import string

from doc import Doc, notebook, surround
from shapes import (
    EXTENSION,
    annotated,
    assign,
    b64,
    constructor,
    fallback,
    json_escaped,
    pem_literal,
    url_encoded,
)
from values import ALNUM, HEX, PROVIDERS, password, pem_body, pick, secret_key_material

# secret-bearing names, as words (the casing comes from the language)
NAMES = [
    ["api", "key"],
    ["secret", "key"],
    ["client", "secret"],
    ["auth", "token"],
    ["access", "token"],
    ["refresh", "token"],
    ["signing", "key"],
    ["encryption", "key"],
    ["master", "key"],
    ["app", "secret"],
    ["webhook", "secret"],
    ["service", "token"],
    ["db", "password"],
    ["admin", "passwd"],
    ["smtp", "pwd"],
    ["credentials"],
    ["auth"],
    ["private", "key", "id"],
    ["session", "secret"],
    ["partner", "api", "key"],
    ["license", "secret"],
    ["deploy", "token"],
    ["consumer", "secret"],
    ["password"],
    ["bot", "token"],
    ["stripe", "key"],
    ["sendgrid", "key"],
    ["hmac", "secret"],
    ["mgmt", "token"],
    ["oauth", "client", "secret"],
]
KINDS = ["py", "js", "ts", "go", "java", "cs", "rb", "php", "sh", "yaml", "env", "ini", "props", "json", "docker"]
CLIENTS = ["Stripe", "Twilio", "Mailgun", "Pusher", "Algolia", "Segment", "Contentful", "Braintree"]


def generic_value(rng: random.Random, words: list[str]) -> str:
    """A value of the kind that name usually holds."""
    if any(w in ("password", "passwd", "pwd") for w in words):
        return password(rng)
    roll = rng.random()
    if roll < 0.25:
        return pick(rng, HEX, rng.choice([32, 40]))
    if roll < 0.5:
        return pick(rng, ALNUM, rng.choice([24, 32, 40]))
    if roll < 0.75:
        return pick(rng, ALNUM + "-_", rng.choice([30, 43]))
    return pick(rng, string.ascii_lowercase + string.digits, 32)


def _new(docs: list[Doc], family: str, kind: str, index: int, stem: str = "") -> Doc:
    ext = EXTENSION.get(kind, ".txt")
    if ext == "Dockerfile":
        name = f"{family}/{stem or 'svc'}{index}/Dockerfile"
    else:
        name = f"{family}/{stem or kind}_{index}{ext}"
    doc = Doc(name, family)
    docs.append(doc)
    return doc


def names(rng: random.Random) -> list[Doc]:
    """Generic assignments across the widened vocabulary, languages and casings."""
    docs: list[Doc] = []
    for index in range(24):
        kind = KINDS[index % len(KINDS)]
        doc = _new(docs, "names", kind, index)
        body: list[tuple[str, str | None]] = []
        for words in rng.sample(NAMES, 4):
            body.append((assign(kind, words, generic_value(rng, words), rng), "assign"))
        surround(doc, kind, rng, body)
    return docs


def syntax(rng: random.Random) -> list[Doc]:
    """The syntax around the value: fallbacks, annotations, constructors, XML, INI, YAML
    block scalars, HCL defaults, Kubernetes env pairs, Dockerfiles."""
    docs: list[Doc] = []
    envs = ["STRIPE_SECRET", "API_TOKEN", "DB_PASSWORD", "SESSION_SECRET", "MAILGUN_API_KEY", "PUSHER_SECRET"]
    for index, kind in enumerate(["py", "js", "ts", "sh", "php", "rb", "go", "yaml"]):
        doc = _new(docs, "syntax", kind, index, "fallback")
        body: list[tuple[str, str | None]] = []
        for env in rng.sample(envs, 2):
            value = password(rng) if "PASSWORD" in env else pick(rng, ALNUM, 32)
            body.append((fallback(kind, env, value), "fallback"))
        surround(doc, kind, rng, body)
    for index, kind in enumerate(["py", "ts", "go", "cs", "java"]):
        doc = _new(docs, "syntax", kind, index, "annotated")
        words = rng.choice([["api", "key"], ["client", "secret"], ["auth", "token"], ["db", "password"]])
        surround(doc, kind, rng, [(annotated(kind, words, generic_value(rng, words)), "annotation")])
    for index, kind in enumerate(["py", "js", "ts", "go", "cs", "rb", "php", "java"]):
        doc = _new(docs, "syntax", kind, index, "ctor")
        words = rng.choice([["api", "key"], ["secret"], ["auth", "token"], ["api", "secret"], ["password"]])
        surround(doc, kind, rng, [(constructor(kind, rng.choice(CLIENTS), words, generic_value(rng, words)), "ctor")])
    for index in range(3):
        doc = _new(docs, "syntax", "xml", index, "web")
        surround(
            doc,
            "xml",
            rng,
            [
                ("  <appSettings>", None),
                (f'    <add key="PaymentApiKey" value="{pick(rng, ALNUM, 32)}" />', "xml-attr"),
                (f'    <add key="SmtpPassword" value="{password(rng)}" />', "xml-attr"),
                ("  </appSettings>", None),
                (f'  <property name="client.secret" value="{pick(rng, ALNUM + "-_", 40)}"/>', "xml-attr"),
                (f"  <password>{password(rng)}</password>", "xml-element"),
            ],
        )
    for index in range(3):
        doc = _new(docs, "syntax", "ini", index, "settings")
        doc.add("[database]", "host = db.internal", "user = billing")
        doc.secret(f"password = {password(rng)}", "ini")
        doc.add("", "[stripe]")
        doc.secret(f"secret = {pick(rng, ALNUM, 40)}", "ini")
        doc = _new(docs, "syntax", "props", index, "application")
        doc.add("spring.datasource.username=billing")
        doc.secret(f"spring.datasource.password={password(rng)}", "properties")
        doc.secret(f"app.jwt.signing-key={pick(rng, ALNUM, 48)}", "properties")
    for index in range(3):
        doc = _new(docs, "syntax", "yaml", index, "block")
        doc.add("auth:", "  issuer: https://auth.acme.io")
        doc.secret(f"  client_secret: >-\n    {pick(rng, ALNUM + '-_', 40)}", "yaml-folded")
        doc.secret(f"  api_token: |\n    {pick(rng, ALNUM, 36)}", "yaml-literal")
    for index in range(4):
        doc = _new(docs, "syntax", "hcl", index, "variables")
        doc.add('variable "region" {\n  type    = string\n  default = "eu-west-1"\n}')
        name = rng.choice(["db_password", "datadog_api_key", "github_token", "admin_secret"])
        value = password(rng) if "password" in name else pick(rng, HEX if "datadog" in name else ALNUM, 32)
        doc.add(f'variable "{name}" {{', "  type      = string", "  sensitive = true")
        doc.secret(f'  default   = "{value}"', "hcl-default")
        doc.add("}")
    for index in range(4):
        doc = _new(docs, "syntax", "yaml", index, "deployment")
        doc.add(
            "apiVersion: apps/v1",
            "kind: Deployment",
            "spec:",
            "  template:",
            "    spec:",
            "      containers:",
            "        - name: api",
            "          image: acme/api:1.4",
            "          env:",
            "            - name: LOG_LEVEL",
            "              value: info",
        )
        env = rng.choice(["API_TOKEN", "DB_PASS", "SENTRY_SECRET", "SIGNING_KEY"])
        value = password(rng) if "PASS" in env else pick(rng, ALNUM, 40)
        doc.secret(f'            - name: {env}\n              value: "{value}"', "k8s-env-pair")
    for index in range(3):
        doc = _new(docs, "syntax", "docker", index, "svc")
        surround(
            doc,
            "docker",
            rng,
            [
                (f"ARG NPM_TOKEN={PROVIDERS['npm'](rng)}", "dockerfile-arg"),
                (f"ENV API_SECRET={pick(rng, ALNUM, 40)}", "dockerfile-env"),
            ],
        )
    for index in range(3):
        doc = _new(docs, "syntax", "py", index, "dicts")
        surround(
            doc,
            "py",
            rng,
            [
                (f'CONFIG = {{"endpoint": "https://api.acme.io", "api_key": "{pick(rng, ALNUM, 32)}"}}', "dict"),
                (f"headers = {{'X-Api-Key': '{pick(rng, HEX, 32)}'}}", "header-dict"),
            ],
        )
        doc = _new(docs, "syntax", "go", index, "maps")
        surround(
            doc,
            "go",
            rng,
            [
                (f'var creds = map[string]string{{"user": "svc", "token": "{pick(rng, ALNUM, 40)}"}}', "go-map"),
                (f'\treq.Header.Set("X-API-Key", "{pick(rng, ALNUM, 32)}")', "header-set"),
            ],
        )
    return docs


def containers(rng: random.Random) -> list[Doc]:
    """Text inside containers: notebooks, JSON escapes, Secret data, URL-encoding, PEM
    literals, service-account JSON."""
    docs: list[Doc] = []
    for index in range(5):
        doc = _new(docs, "containers", "plain", index, "analysis")
        doc.path = doc.path.removesuffix(".txt") + ".ipynb"
        key = rng.choice([PROVIDERS["openai"], PROVIDERS["hf"], lambda r: pick(r, ALNUM, 40)])(rng)
        src1 = [
            ("import pandas as pd", False),
            ("import requests", False),
            ("", False),
            (f'API_KEY = "{key}"', True),
            ("resp = requests.get(URL, headers={'key': API_KEY})", False),
        ]
        out2 = [(f"token: {PROVIDERS['github-classic'](rng)}", True)] if index % 2 else [("200", False)]
        lines, marked = notebook([(src1, []), ([("print(resp.status_code)", False)], out2)])
        for number, line in enumerate(lines, 1):
            if number in marked:
                doc.secret(line, "notebook")
            else:
                doc.add(line)
    for index in range(4):
        doc = _new(docs, "containers", "json", index, "escaped")
        inner = {"user": "svc", "password": password(rng), "host": "db.internal"}
        doc.add("{", '  "name": "billing",')
        doc.secret(f'  "settings": {json_escaped(inner)},', "json-in-json")
        doc.secret(f'  "awsSecret": "{PROVIDERS["aws-secret"](rng).replace("/", chr(92) + "/")}",', "json-slash")
        doc.add('  "port": 8080', "}")
    for index in range(5):
        doc = _new(docs, "containers", "yaml", index, "secret")
        doc.add("apiVersion: v1", "kind: Secret", "metadata:", f"  name: app-{index}", "type: Opaque", "data:")
        doc.add(f"  LOG_LEVEL: {b64('info')}")
        entries = [
            (rng.choice(["DB_URL", "database-url"]), f"postgresql://app:{password(rng)}@pg.internal:5432/app"),
            (rng.choice(["config.json", "settings"]), '{"token": "' + pick(rng, ALNUM, 40) + '"}'),
            (rng.choice(["ADMIN", "sa", "credentials"]), password(rng)),
        ]
        for key, value in entries:
            doc.secret(f"  {key}: {b64(value)}", "k8s-secret-data")
    for index in range(4):
        doc = _new(docs, "containers", "sh", index, "token")
        secret = pick(rng, ALNUM, 30) + rng.choice("+/=") + pick(rng, ALNUM, 9)
        doc.add("#!/bin/sh")
        doc.secret(
            "curl -s -X POST https://login.acme.io/oauth2/token "
            f'-d "grant_type=client_credentials&client_id=billing&client_secret={url_encoded(secret)}"',
            "url-encoded",
        )
        doc.secret(f"wget 'https://files.acme.io/export?user=ops&password={url_encoded(password(rng))}'", "url-query")
    for index, kind in enumerate(["js", "py", "go", "json", "env", "yaml"]):
        doc = _new(docs, "containers", kind, index, "pem")
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"])
        surround(
            doc, kind if kind != "json" else "plain", rng, [(pem_literal(kind, pem_body(rng, label, 6)), "pem-literal")]
        )
    for index in range(3):
        doc = _new(docs, "containers", "json", index, "service-account")
        pem = "\\n".join(pem_body(rng, "PRIVATE KEY", 10)) + "\\n"
        doc.add("{", '  "type": "service_account",', f'  "project_id": "acme-prod-{index}",')
        doc.secret(f'  "private_key_id": "{pick(rng, HEX, 40)}",\n  "private_key": "{pem}",', "gcp-service-account")
        doc.add(
            f'  "client_email": "deploy@acme-prod-{index}.iam.gserviceaccount.com",',
            f'  "client_id": "{rng.randint(10**20, 10**21)}",',
            '  "token_uri": "https://oauth2.googleapis.com/token"',
            "}",
        )
    return docs


def keymaterial(rng: random.Random) -> list[Doc]:
    """Key material without a provider prefix, gated by its name."""
    docs: list[Doc] = []
    forms = [
        ("py", "aes-hex", 'AES_KEY = bytes.fromhex("{v}")'),
        ("py", "aes-b64", 'ENCRYPTION_KEY = base64.b64decode("{v}")'),
        ("py", "fernet", 'FERNET_KEY = b"{v}"'),
        ("py", "fernet", 'cipher = Fernet(b"{v}")'),
        ("py", "django", "SECRET_KEY = '{v}'"),
        ("yaml", "rails", "  secret_key_base: {v}"),
        ("rb", "rails", "  config.secret_key_base = '{v}'"),
        ("env", "hmac", "JWT_SECRET={v}"),
        ("py", "hmac", 'token = jwt.encode(payload, "{v}", algorithm="HS256")'),
        ("py", "hmac", 'digest = hmac.new(b"{v}", body, hashlib.sha256).hexdigest()'),
        ("js", "hmac", "const sig = crypto.createHmac('sha256', '{v}').update(body).digest('hex');"),
        ("go", "hmac", 'var jwtKey = []byte("{v}")'),
        ("js", "aes-hex", "const key = Buffer.from('{v}', 'hex');"),
        ("java", "aes-b64", '        byte[] key = Base64.getDecoder().decode("{v}");'),
        ("cs", "aes-b64", '        var key = Convert.FromBase64String("{v}");'),
        ("env", "aes-hex", "DATA_ENCRYPTION_KEY={v}"),
        ("yaml", "hmac", "  jwt_signing_secret: {v}"),
        ("php", "hmac", "$signature = hash_hmac('sha256', $payload, '{v}');"),
    ]
    for index in range(3):
        for number, (kind, material, template) in enumerate(forms):
            doc = _new(docs, "keymaterial", kind, index * 100 + number, material)
            value = secret_key_material(rng, material)
            surround(doc, kind, rng, [(template.format(v=value), material)])
    return docs
