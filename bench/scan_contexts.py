"""Independent realistic leak contexts for the accuracy benchmark, written apart from the
rule catalog's own examples (so keyguard is not graded only on its own templates).

Lines starting with ``§`` hold a planted secret (consecutive ``§`` lines form one plant);
the marker is removed when the file is written. Templates use keyguard's generator syntax.
"""

from __future__ import annotations

AK = "AKIA{gen:[A-Z2-7]*16}"
SK = "{gen:[A-Za-z0-9/+]*38}{gen:[0-9]*2}"
PW = "{gen:[A-Za-z]*6}{gen:[0-9]*3}{gen:[A-Za-z0-9]*7}"
UUID = "{gen:[0-9a-f]*8}-{gen:[0-9a-f]*4}-4{gen:[0-9a-f]*3}-a{gen:[0-9a-f]*3}-{gen:[0-9a-f]*12}"

# (family, file name, content)
CONTEXTS: tuple[tuple[str, str, str], ...] = (
    (
        "aws",
        "main.tf",
        f'provider "aws" {{\n  region     = "eu-west-1"\n§  access_key = "{AK}"\n§  secret_key = "{SK}"\n}}\n',
    ),
    (
        "aws",
        "credentials",
        f"[default]\n§aws_access_key_id = {AK}\n§aws_secret_access_key = {SK}\nregion = us-east-1\n",
    ),
    (
        "aws",
        "deploy.yml",
        f"jobs:\n  deploy:\n    env:\n§      AWS_ACCESS_KEY_ID: {AK}\n§      AWS_SECRET_ACCESS_KEY: {SK}\n",
    ),
    ("github", "ci.yml", "steps:\n  - uses: actions/checkout@v4\n    with:\n§      token: {crc:ghp}\n"),
    ("github", "clone.sh", "#!/bin/sh\n§git clone https://x-access-token:{crc:ghs}@github.com/acme/api.git\n"),
    (
        "github",
        "settings.py",
        "GITHUB_APP_ID = 123456\n§GITHUB_TOKEN = 'github_pat_{gen:[A-Za-z0-9]*22}_{gen:[A-Za-z0-9]*59}'\n",
    ),
    ("gitlab", ".gitlab-ci.yml", "variables:\n§  PRIVATE_TOKEN: glpat-{gen:[A-Za-z0-9_-]*20}\n"),
    (
        "private_keys",
        "sa.json",
        '{\n  "type": "service_account",\n'
        '§  "private_key": "-----BEGIN PRIVATE KEY-----\\n{rawb64:48}\\n{rawb64:48}\\n-----END PRIVATE KEY-----\\n",\n'
        '  "client_email": "svc@proj.iam.gserviceaccount.com"\n}\n',
    ),
    (
        "private_keys",
        "values.yaml",
        "tls:\n  key: |\n§    -----BEGIN EC PRIVATE KEY-----\n"
        "§    {rawb64:48}\n§    {rawb64:48}\n§    -----END EC PRIVATE KEY-----\n",
    ),
    (
        "private_keys",
        "id_deploy",
        "§-----BEGIN OPENSSH PRIVATE KEY-----\n§{rawb64:48}\n§{rawb64:48}\n"
        "§{rawb64:48}\n§-----END OPENSSH PRIVATE KEY-----\n",
    ),
    (
        "slack",
        "notify.js",
        "const axios = require('axios');\n§const HOOK = 'https://hooks.slack.com/services/"
        "T{gen:[A-Z0-9]*10}/B{gen:[A-Z0-9]*10}/{gen:[A-Za-z0-9]*24}';\n",
    ),
    (
        "slack",
        "bot.py",
        'from slack_sdk import WebClient\n§client = WebClient(token="xoxb-{gen:[0-9]*12}-'
        '{gen:[0-9]*13}-{gen:[A-Za-z0-9]*24}")\n',
    ),
    ("payments", "stripe.rb", "require 'stripe'\n§Stripe.api_key = 'sk_live_{gen:[0-9A-Za-z]*34}'\n"),
    ("payments", "shop.env", "SHOP=acme\n§SHOPIFY_ACCESS_TOKEN=shpat_{gen:[a-f0-9]*32}\n"),
    ("email", "mail.php", "<?php\n§define('SENDGRID_API_KEY', 'SG.{gen:[A-Za-z0-9_-]*22}.{gen:[A-Za-z0-9_-]*43}');\n"),
    (
        "urls",
        "docker-compose.yml",
        f"services:\n  api:\n    environment:\n§      DATABASE_URL: postgres://api:{PW}@db:5432/api\n",
    ),
    (
        "urls",
        "application.properties",
        "spring.datasource.url=jdbc:mysql://db:3306/app\n"
        f"spring.datasource.username=app\n§spring.datasource.password={PW}\n",
    ),
    ("urls", "curl.sh", "§curl -H 'Authorization: Basic {b64:deploy:" + PW + "}' https://nexus.corp/api\n"),
    (
        "urls",
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n§  password: {b64:" + PW + "}\n",
    ),
    ("jwt", "collection.json", '{"request": {"header": [{"key": "Authorization",\n§  "value": "Bearer {jwt:}"}]}}\n'),
    (
        "ai",
        "notebook.ipynb",
        '{"cells": [{"source": [\n§  "openai.api_key = \\"sk-proj-{gen:[A-Za-z0-9_-]*74}'
        'T3BlbkFJ{gen:[A-Za-z0-9_-]*74}\\"\\n"\n]}]}\n',
    ),
    ("ai", "hub.py", 'from huggingface_hub import login\n§login(token="hf_{gen:[A-Za-z]*34}")\n'),
    (
        "ai",
        "claude.ts",
        "import Anthropic from '@anthropic-ai/sdk';\n§const client = new Anthropic({ apiKey: "
        "'sk-ant-api03-{gen:[A-Za-z0-9_-]*93}AA' });\n",
    ),
    (
        "azure",
        "appsettings.json",
        '{\n  "Storage": {\n§    "ConnectionString": "DefaultEndpointsProtocol=https;'
        'AccountName=acmeprod;AccountKey={gen:[A-Za-z0-9+/]*86}==;EndpointSuffix=core.windows.net"\n  }\n}\n',
    ),
    (
        "gcp",
        "strings.xml",
        '<resources>\n§  <string name="google_api_key">AIza{gen:[0-9A-Za-z_-]*35}</string>\n</resources>\n',
    ),
    ("registries", ".npmrc", "registry=https://registry.npmjs.org/\n§//registry.npmjs.org/:_authToken={crc:npm}\n"),
    (
        "registries",
        ".pypirc",
        "[pypi]\nusername = __token__\n§password = pypi-AgEIcHlwaS5vcmc{gen:[A-Za-z0-9_-]*120}\n",
    ),
    (
        "chat",
        "bot.py",
        'import telegram\n§bot = telegram.Bot(token="{gen:[1-9]*1}{gen:[0-9]*9}:AA{gen:[A-Za-z0-9_-]*33}")\n',
    ),
    (
        "china_messaging",
        "alert.go",
        'package alert\n§const hook = "https://oapi.dingtalk.com/robot/send?access_token={gen:[a-f0-9]*64}"\n',
    ),
    (
        "alibaba",
        "oss.py",
        "import oss2\n§auth = oss2.Auth('LTAI{gen:[A-Za-z0-9]*20}', '{gen:[A-Za-z0-9]*28}{gen:[0-9]*2}')\n",
    ),
    ("generic", "config.py", f"DEBUG = False\n§SECRET_KEY = '{SK}'\n§DB_PASSWORD = \"{PW}\"\n"),
    ("generic", "app.json", '{\n  "name": "api",\n§  "apiSecret": "' + SK + '",\n  "port": 8080\n}\n'),
)

# independent hard negatives, one file per family name "negatives"
NEGATIVES: tuple[str, ...] = (
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "export GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}",
    "token: ${{ github.token }}",
    "password = os.getenv('DB_PASSWORD')",
    "DATABASE_URL=postgres://${DB_USER}:${DB_PASS}@db:5432/app",
    "url = f'postgresql://{user}:{password}@{host}/{name}'",
    "'resolved': 'https://registry.npmjs.org/x/-/x-1.0.0.tgz', 'integrity': 'sha512-{gen:[A-Za-z0-9+/]*86}=='",
    "Merge: {gen:[0-9a-f]*40}",
    f'"id": "{UUID}"',
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{gen:[A-Za-z0-9+/]*300} ops@bastion",
    "{pem:CERTIFICATE}",
    "{pem:PUBLIC KEY}",
    "STRIPE_KEY=sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
    "slack_webhook: https://hooks.slack.com/services/XXXXXXXXX/XXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
    "api_key: <YOUR_API_KEY>",
    "secret: {{ .Values.secret }}",
    "OPENAI_API_KEY=sk-...",
    "password_hash = '$2b$12${gen:[A-Za-z0-9./]*53}'",
    "sha256sum: {gen:[0-9a-f]*64}",
    "# Set AWS_SECRET_ACCESS_KEY in your shell before running",
    "headers = {'Authorization': f'Bearer {token}'}",
    "client_secret=REPLACE_ME",
    "cache_key = hashlib.md5(url.encode()).hexdigest()",
)
