"""Hard negatives of the second corpus, per family: what looks like a credential in that
family's shapes and is not one (placeholders, references, hashes and ids in identifier
contexts, documented example values, public keys, tokens failing their checksum)."""

from __future__ import annotations

import hashlib
import random
import string
import uuid

from doc import Doc, notebook, surround
from families import _new
from shapes import b64, json_escaped, pem_literal, url_encoded
from values import ALNUM, DOCUMENTED, HEX, checksummed, pem_body, pick


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _lines(family: str, rng: random.Random) -> dict[str, list[str]]:
    sha1 = hashlib.sha1(rng.randbytes(8)).hexdigest()
    sha256 = hashlib.sha256(rng.randbytes(8)).hexdigest()
    md5 = hashlib.md5(rng.randbytes(8)).hexdigest()  # noqa: S324 - an identifier, not security
    if family == "names":
        return {
            "py": [
                'API_KEY = os.environ["API_KEY"]',
                "secret_key = settings.SECRET_KEY",
                'DB_PASSWORD = ""',
                "auth_token = None",
                'password = getpass.getpass("Password: ")',
                f'commit_sha = "{sha1}"',
                f'etag = "{md5}"',
                f'request_id = "{_uuid(rng)}"',
                'api_key_header = "X-API-Key"',
                'TOKEN_URL = "https://auth.acme.io/oauth/token"',
                'password_field = "password"',
                'SECRET_KEY = "your-secret-key-here"',
                "client_secret = '<client-secret>'",
                "sort_key = 'created_at'",
                "primary_key = 'id'",
                f'tenant_id = "{_uuid(rng)}"',
                f'checksum = "{sha256}"',
            ],
            "js": [
                "const apiKey = process.env.API_KEY;",
                "const token = req.headers['x-auth-token'];",
                "const password = '';",
                "const accessToken = await getAccessToken(clientId);",
                "const secretKey = config.get('secretKey');",
                "const API_KEY = 'YOUR_API_KEY';",
                f"const integrity = 'sha512-{pick(rng, ALNUM + '+/', 86)}==';",
            ],
            "yaml": [
                "  password: ${DB_PASSWORD}",
                "  api_key: '{{ .Values.apiKey }}'",
                "  token: <TOKEN>",
                "  client_secret: !vault |",
                "  secret_name: billing-secrets",
                "  password_min_length: 12",
                f"  image_digest: sha256:{sha256}",
            ],
            "env": [
                "API_KEY=",
                "SECRET_KEY=changeme",
                "DB_PASSWORD=${DB_PASSWORD}",
                "AUTH_TOKEN=xxxxxxxxxxxxxxxx",
                "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "PASSWORD=<password>",
            ],
            "go": [
                '\tapiKey := os.Getenv("API_KEY")',
                '\ttoken := r.Header.Get("Authorization")',
                '\tpassword := viper.GetString("db.password")',
                f'\tconst buildHash = "{sha1}"',
            ],
            "java": [
                '    @Value("${app.secret}") private String secret;',
                '    String password = System.getenv("DB_PASSWORD");',
                '    private static final String TOKEN_HEADER = "X-Auth-Token";',
            ],
        }
    if family == "syntax":
        return {
            "py": [
                'api_key = os.environ.get("API_KEY", "")',
                'secret = os.getenv("SECRET", None)',
                "    api_key: str = field(default_factory=lambda: os.environ['API_KEY'])",
                "    password: Optional[str] = None",
                "client = Stripe(api_key=settings.STRIPE_KEY)",
                "client = Client(api_key=api_key, timeout=10)",
                'token = os.environ.get("TOKEN", "changeme")',
            ],
            "js": [
                "const apiKey = process.env.API_KEY || '';",
                "const secret = process.env.SECRET ?? 'changeme';",
                "const client = new Stripe({ apiKey: process.env.STRIPE_KEY });",
            ],
            "sh": [
                'DB_PASSWORD="${DB_PASSWORD:-}"',
                'TOKEN="${TOKEN:?missing}"',
                'export API_KEY="$(vault read -field=key secret/api)"',
            ],
            "xml": [
                '    <add key="PaymentApiKey" value="#{PaymentApiKey}#" />',
                '  <property name="password" value="${db.password}"/>',
                "  <password></password>",
            ],
            "hcl": [
                'variable "db_password" {\n  type      = string\n  sensitive = true\n}',
                'variable "api_key" {\n  description = "API key for the provider"\n  default     = ""\n}',
                "  password = var.db_password",
                '  token    = data.vault_generic_secret.ci.data["token"]',
            ],
            "yaml": [
                "            - name: API_TOKEN\n              valueFrom:\n                secretKeyRef:\n"
                "                  name: api\n                  key: token",
                '            - name: DB_PASSWORD\n              value: "$(DB_PASSWORD)"',
                "  client_secret: >-\n    ${CLIENT_SECRET}",
            ],
            "docker": ["ARG NPM_TOKEN", "ENV API_SECRET=${API_SECRET}", "RUN --mount=type=secret,id=npm npm ci"],
        }
    if family == "containers":
        return {
            "yaml": [
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: empty\ndata:\n"
                f"  password: {b64('changeme')}\n  username: {b64('admin')}\n  LOG_LEVEL: {b64('debug')}",
                "apiVersion: v1\nkind: ConfigMap\ndata:\n  app.properties: |\n    timeout=30",
            ],
            "js": [
                pem_literal("js", pem_body(rng, "PUBLIC KEY", 4)).replace("privateKey", "publicKey"),
                'const cert = "-----BEGIN CERTIFICATE-----\\nMIIB...\\n-----END CERTIFICATE-----\\n";',
                'const key = "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n";',
            ],
            "json": [
                '  "settings": ' + json_escaped({"password": "${DB_PASSWORD}", "user": "svc"}) + ",",
                f'  "sha": "{sha1}",',
                f'  "id": "{_uuid(rng)}",',
            ],
            "sh": [
                'curl -d "grant_type=client_credentials&client_secret=$CLIENT_SECRET" https://login.acme.io',
                f"wget 'https://files.acme.io/export?user=ops&password={url_encoded('<password>')}'",
            ],
        }
    if family == "keymaterial":
        return {
            "py": [
                "SECRET_KEY = os.environ['DJANGO_SECRET_KEY']",
                "SECRET_KEY = get_random_secret_key()",
                "key = Fernet.generate_key()",
                "AES_KEY = os.urandom(32)",
                f'FILE_SHA256 = "{sha256}"',
                f'cache_key = "{md5}"',
                f'session_id = "{_uuid(rng)}"',
                'jwt.encode(payload, key, algorithm="RS256")',
                "digest = hmac.new(key, body, hashlib.sha256).hexdigest()",
                f'expected_digest = "{sha256}"',
            ],
            "yaml": ['  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>', f"  content_sha256: {sha256}"],
            "js": [
                "const sig = crypto.createHmac('sha256', secret).update(body).digest('hex');",
                f"const hash = '{sha256}';",
            ],
            "env": ["JWT_SECRET=", "ENCRYPTION_KEY=${ENCRYPTION_KEY}"],
        }
    if family in ("providers", "classic"):
        bad = checksummed("ghp", rng, valid=False)
        return {
            "py": [
                f'AWS_ACCESS_KEY_ID = "{DOCUMENTED["aws-key-id"]}"',
                f'AWS_SECRET_ACCESS_KEY = "{DOCUMENTED["aws-secret"]}"',
                f'SAMPLE_JWT = "{DOCUMENTED["jwt"]}"',
                f'GITHUB_TOKEN = "{bad}"',
                'STRIPE_KEY = "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"',
                'SLACK_WEBHOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"',
                'OPENAI_API_KEY = "sk-..."',
                "MAPBOX_PUBLIC_TOKEN = 'pk.eyJ1IjoiYWNtZSIsImEiOiJja2V4YW1wbGUifQ.abc'",
                f'SENTRY_DSN = "https://{pick(rng, HEX, 32)}@o{rng.randint(10**5, 10**6)}.ingest.sentry.io/42"',
                'VAULT_TOKEN = "s.xxxxxxxxxxxxxxxxxxxxxxxx"',
                "DD_API_KEY = '<DATADOG_API_KEY>'",
                f'BUILD_ID = "{pick(rng, HEX, 32)}"',
                f'datadog_dashboard_id = "{pick(rng, string.ascii_lowercase, 3)}-x1"',
            ],
            "js": [
                "const stripe = require('stripe')(process.env.STRIPE_SECRET_KEY);",
                "const token = 'ghp_' + randomString(36);",
                "// AKIAIOSFODNN7EXAMPLE is the documented sample",
                "const vaultPath = 's.secret/data/app';",
            ],
        }
    return {  # connections
        "sh": [
            "curl -u $USER:$PASS https://nexus.acme.io",
            'curl -H "Authorization: Bearer $TOKEN" https://api.acme.io',
            "curl -H 'Authorization: Bearer <token>' https://api.acme.io",
            f"curl -H 'Authorization: Basic {DOCUMENTED['basic']}' http://localhost:8080",
            "git clone https://$GITHUB_TOKEN:x-oauth-basic@github.com/acme/api.git",
            "curl -u admin:admin http://localhost:9000",
            'http GET :8000/me "Authorization: Token ${API_TOKEN}"',
        ],
        "py": [
            'DATABASE_URL = "postgresql://user:password@localhost/db"',
            'url = f"postgresql://{user}:{password}@{host}/{name}"',
            'MONGO_URI = "mongodb+srv://<username>:<password>@cluster0.mongodb.net"',
            'REDIS_URL = "redis://localhost:6379/0"',
            "CELERY_BROKER = 'amqp://guest:guest@localhost:5672//'",
        ],
        "plain": [
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
            "password = ${PYPI_PASSWORD}",
            "machine api.acme.io login deploy password $NETRC_PASSWORD",
            '"credsStore": "desktop"',
            '"auth": ""',
        ],
        "json": [
            '    "Default": "Server=(localdb)\\\\mssqllocaldb;Database=app;Trusted_Connection=True;"',
            '    "Sql": "Server=db;Database=app;User Id=sa;Password=<YourStrong@Passw0rd>;"',
        ],
    }


FAMILIES = ("names", "syntax", "containers", "keymaterial", "providers", "classic", "connections")


def negatives(rng: random.Random) -> list[Doc]:
    """Negative-only files for every family, three copies each with fresh values."""
    docs: list[Doc] = []
    for family in FAMILIES:
        for copy in range(3):
            for kind, lines in _lines(family, rng).items():
                doc = _new(docs, family, kind, copy, f"clean_{kind}")
                surround(doc, kind, rng, [(line, None) for line in lines])
    lines, _ = notebook(
        [
            (
                [("import os", False), ('API_KEY = os.environ["API_KEY"]', False)],
                [(f"run id {_uuid(rng)}", False), (f"sha {hashlib.sha1(b'x').hexdigest()}", False)],
            )
        ]
    )
    doc = Doc("containers/clean_notebook.ipynb", "containers")
    doc.add(*lines)
    docs.append(doc)
    return docs
