"""How a value is written in each language and format: assignments with the language's
own naming convention, fallbacks, annotations, constructor arguments, config files."""

from __future__ import annotations

import base64
import json
import random
import urllib.parse


def cased(words: list[str], style: str) -> str:
    """``["db", "password"]`` as ``db_password`` / ``DB_PASSWORD`` / ``dbPassword`` /
    ``DbPassword`` / ``db-password`` / ``db.password``."""
    if style == "snake":
        return "_".join(words)
    if style == "upper":
        return "_".join(words).upper()
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    if style == "kebab":
        return "-".join(words)
    if style == "dotted":
        return ".".join(words)
    raise ValueError(style)


# kind -> (naming styles that language uses, line template with {n} name and {v} value)
ASSIGN: dict[str, list[tuple[str, str]]] = {
    "py": [("upper", '{n} = "{v}"'), ("snake", "{n} = '{v}'"), ("snake", 'self.{n} = "{v}"')],
    "js": [("camel", "const {n} = '{v}';"), ("upper", 'const {n} = "{v}";'), ("camel", "  {n}: '{v}',")],
    "ts": [("camel", 'export const {n}: string = "{v}";'), ("camel", "  private readonly {n} = '{v}';")],
    "go": [("camel", '\t{n} := "{v}"'), ("pascal", 'const {n} = "{v}"'), ("pascal", '\t{n}: "{v}",')],
    "java": [("camel", '    private String {n} = "{v}";'), ("upper", '    static final String {n} = "{v}";')],
    "cs": [("pascal", '        public const string {n} = "{v}";'), ("pascal", '        {n} = "{v}",')],
    "rb": [("upper", "  {n} = '{v}'"), ("snake", '  config.{n} = "{v}"'), ("snake", "  {n}: '{v}',")],
    "php": [("snake", "${n} = '{v}';"), ("upper", "define('{n}', '{v}');"), ("snake", "    '{n}' => '{v}',")],
    "sh": [("upper", "export {n}={v}"), ("upper", '{n}="{v}"')],
    "yaml": [("snake", "  {n}: {v}"), ("camel", '  {n}: "{v}"'), ("kebab", "  {n}: '{v}'")],
    "env": [("upper", "{n}={v}"), ("upper", '{n}="{v}"')],
    "ini": [("snake", "{n} = {v}")],
    "props": [("dotted", "{n}={v}"), ("kebab", "{n}: {v}")],
    "json": [("camel", '  "{n}": "{v}",'), ("snake", '  "{n}": "{v}",')],
    "hcl": [("snake", '  {n} = "{v}"')],
    "docker": [("upper", "ENV {n}={v}"), ("upper", "ARG {n}={v}"), ("upper", 'ENV {n} "{v}"')],
}

EXTENSION = {
    "py": ".py",
    "js": ".js",
    "ts": ".ts",
    "go": ".go",
    "java": ".java",
    "cs": ".cs",
    "rb": ".rb",
    "php": ".php",
    "sh": ".sh",
    "yaml": ".yaml",
    "env": ".env",
    "ini": ".ini",
    "props": ".properties",
    "json": ".json",
    "hcl": ".tf",
    "docker": "Dockerfile",
    "xml": ".config",
}


def assign(kind: str, words: list[str], value: str, rng: random.Random) -> str:
    """One assignment of ``value`` to a variable named ``words`` in ``kind``'s syntax."""
    style, template = rng.choice(ASSIGN[kind])
    return template.format(n=cased(words, style), v=value)


def fallback(kind: str, env: str, value: str) -> str:
    """A read of environment variable ``env`` with ``value`` as its default."""
    forms = {
        "py": f'{env.lower()} = os.environ.get("{env}", "{value}")',
        "js": f"const {env.lower()} = process.env.{env} || '{value}';",
        "ts": f'const {env.lower()} = process.env.{env} ?? "{value}";',
        "sh": f'{env}="${{{env}:-{value}}}"',
        "php": f"${env.lower()} = getenv('{env}') ?: '{value}';",
        "rb": f"  {env.lower()} = ENV.fetch('{env}', '{value}')",
        "go": f'\t{env.lower()} := getEnv("{env}", "{value}")',
        "yaml": f'      {env}: "${{{env}:-{value}}}"',
    }
    return forms[kind]


def annotated(kind: str, words: list[str], value: str) -> str:
    """A typed declaration with the value."""
    forms = {
        "py": f'    {cased(words, "snake")}: str = "{value}"',
        "ts": f'  {cased(words, "camel")}: string = "{value}";',
        "go": f'var {cased(words, "camel")} string = "{value}"',
        "cs": f'        public string {cased(words, "pascal")} {{ get; set; }} = "{value}";',
        "java": f'    final String {cased(words, "camel")} = "{value}";',
    }
    return forms[kind]


def constructor(kind: str, cls: str, words: list[str], value: str) -> str:
    """A client constructed with the value as a named argument or field."""
    forms = {
        "py": f'client = {cls}({cased(words, "snake")}="{value}", timeout=10)',
        "js": f"const client = new {cls}({{ {cased(words, 'camel')}: '{value}', retries: 2 }});",
        "ts": f'const client = new {cls}({{ {cased(words, "camel")}: "{value}" }});',
        "go": f'\tclient := {cls.lower()}.NewClient(&{cls.lower()}.Config{{{cased(words, "pascal")}: "{value}"}})',
        "cs": f'        var client = new {cls}(new {cls}Options {{ {cased(words, "pascal")} = "{value}" }});',
        "rb": f"  client = {cls}::Client.new({cased(words, 'snake')}: '{value}')",
        "php": f"$client = new {cls}(['{cased(words, 'snake')}' => '{value}']);",
        "java": f'        {cls} client = {cls}.builder().{cased(words, "camel")}("{value}").build();',
    }
    return forms[kind]


def b64(text: str) -> str:
    """Standard base64 of UTF-8 text."""
    return base64.b64encode(text.encode()).decode()


def json_escaped(document: dict[str, str]) -> str:
    """A JSON document embedded as a JSON string (escaped quotes, ``\\/`` like PHP)."""
    inner = json.dumps(document).replace("/", "\\/")
    return json.dumps(inner)


def url_encoded(value: str) -> str:
    """Percent-encoding of every reserved character (form bodies, query strings)."""
    return urllib.parse.quote(value, safe="")


def pem_literal(kind: str, pem_lines: list[str]) -> str:
    """A PEM block as one string literal with ``\\n`` escapes."""
    joined = "\\n".join(pem_lines) + "\\n"
    forms = {
        "js": f'const privateKey = "{joined}";',
        "py": f'PRIVATE_KEY = "{joined}"',
        "go": f'const signingKey = "{joined}"',
        "json": f'  "private_key": "{joined}",',
        "env": f'JWT_PRIVATE_KEY="{joined}"',
        "yaml": f'  private_key: "{joined}"',
    }
    return forms[kind]
