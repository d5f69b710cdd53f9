"""A file under construction that knows which of its lines hold a planted credential,
plus the per-language code around the plants (imports, functions, ordinary settings)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plant:
    """One planted credential: lines ``first..last`` (1-based) of ``path``."""

    path: str
    first: int
    last: int
    family: str
    shape: str

    def to_json(self) -> dict[str, object]:
        """The label as written to labels.json."""
        return {"path": self.path, "first": self.first, "last": self.last, "family": self.family, "shape": self.shape}


@dataclass
class Doc:
    """Lines of one file; ``secret()`` appends lines and records them as one plant."""

    path: str
    family: str
    lines: list[str] = field(default_factory=list)
    plants: list[Plant] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        """Ordinary lines (no credential)."""
        for line in lines:
            self.lines.extend(line.split("\n"))

    def secret(self, text: str, shape: str) -> None:
        """Lines holding one credential (``text`` may span several lines)."""
        parts = text.split("\n")
        first = len(self.lines) + 1
        self.lines.extend(parts)
        self.plants.append(Plant(self.path, first, first + len(parts) - 1, self.family, shape))

    def text(self) -> str:
        """The file's content."""
        return "\n".join(self.lines) + "\n"


# code around the plants, per file kind: (head lines, filler lines, tail lines)
_AROUND: dict[str, tuple[list[str], list[str], list[str]]] = {
    "py": (
        ["import logging", "import os", "from pathlib import Path", "", "log = logging.getLogger(__name__)"],
        [
            "TIMEOUT = 30",
            "RETRIES = 3",
            "BASE_DIR = Path(__file__).resolve().parent",
            "DEBUG = False",
            "ALLOWED_HOSTS = ['api.acme.io']",
            "def health():\n    return {'ok': True}",
        ],
        ["", "if __name__ == '__main__':", "    log.info('starting')"],
    ),
    "js": (
        ["'use strict';", "const express = require('express');", "const app = express();"],
        [
            "const PORT = 8080;",
            "app.use(express.json());",
            "const retries = 3;",
            "function ping(req, res) {\n  res.json({ ok: true });\n}",
        ],
        ["module.exports = app;"],
    ),
    "ts": (
        ["import axios from 'axios';", "import { Injectable } from '@nestjs/common';"],
        ["const timeoutMs: number = 5000;", "export const region = 'eu-west-1';", "type Opts = { retries: number };"],
        ["export default {};"],
    ),
    "go": (
        ["package config", "", 'import (\n\t"net/http"\n\t"time"\n)'],
        [
            "var client = &http.Client{Timeout: 10 * time.Second}",
            "const maxRetries = 3",
            "func Healthy() bool {\n\treturn true\n}",
        ],
        [""],
    ),
    "java": (
        ["package com.acme.billing;", "", "import java.time.Duration;", "", "public class Settings {"],
        [
            "    private static final Duration TIMEOUT = Duration.ofSeconds(5);",
            "    private int retries = 3;",
            '    public String region() { return "eu-west-1"; }',
        ],
        ["}"],
    ),
    "cs": (
        [
            "using System;",
            "using System.Net.Http;",
            "",
            "namespace Acme.Billing",
            "{",
            "    public static class Settings",
            "    {",
        ],
        [
            "        public const int Retries = 3;",
            "        public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);",
        ],
        ["    }", "}"],
    ),
    "rb": (
        ["require 'json'", "require 'net/http'", "", "module Billing"],
        ["  TIMEOUT = 10", "  def self.healthy?\n    true\n  end", "  REGION = 'eu-west-1'"],
        ["end"],
    ),
    "php": (
        ["<?php", "", "declare(strict_types=1);", "", "namespace App\\Config;"],
        ["$timeout = 30;", "$region = 'eu-west-1';", "function healthy(): bool { return true; }"],
        [""],
    ),
    "sh": (
        ["#!/usr/bin/env bash", "set -euo pipefail"],
        ["REGION=eu-west-1", 'echo "deploying to $REGION"', 'cd "$(dirname "$0")"'],
        ["echo done"],
    ),
    "yaml": (
        ["# service settings", "service:", "  name: billing", "  port: 8080"],
        ["  replicas: 2", "  region: eu-west-1", "  log_level: info"],
        [""],
    ),
    "hcl": (
        ['terraform {\n  required_version = ">= 1.5"\n}'],
        ['locals {\n  region = "eu-west-1"\n}', 'resource "aws_s3_bucket" "logs" {\n  bucket = "acme-logs"\n}'],
        [""],
    ),
    "docker": (
        ["FROM python:3.11-slim", "WORKDIR /app"],
        ["COPY . .", "RUN pip install -r requirements.txt"],
        ['CMD ["python", "-m", "app"]'],
    ),
    "env": (["# local settings"], ["APP_ENV=production", "PORT=8080", "LOG_LEVEL=info"], [""]),
    "ini": (["[app]", "name = billing"], ["timeout = 30", "region = eu-west-1"], [""]),
    "props": (
        ["# application.properties", "server.port=8080"],
        ["logging.level.root=INFO", "spring.application.name=billing"],
        [""],
    ),
    "xml": (
        ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>"],
        ["  <!-- settings -->"],
        ["</configuration>"],
    ),
    "json": ([], [], []),
    "plain": ([], [], []),
}


def surround(doc: Doc, kind: str, rng: random.Random, body: list[tuple[str, str | None]]) -> None:
    """Write ``body`` (``(text, shape)`` pairs; shape None = not a credential) inside the
    code of its file kind, with ordinary lines between the entries."""
    head, filler, tail = _AROUND.get(kind, ([], [], []))
    doc.add(*head)
    for text, shape in body:
        if filler and rng.random() < 0.7:
            doc.add(rng.choice(filler))
        if shape is None:
            doc.add(text)
        else:
            doc.secret(text, shape)
    doc.add(*tail)


Cell = list[tuple[str, bool]]  # (line, holds a credential)


def notebook(cells: list[tuple[Cell, Cell]]) -> tuple[list[str], list[int]]:
    """A Jupyter notebook (nbformat 4, one JSON string per source line, as Jupyter writes
    it); ``cells`` are ``(source, outputs)``. Returns the lines and the 1-based numbers of
    the lines that hold a credential."""
    out: list[str] = ["{", ' "cells": [']
    marked: list[int] = []

    def strings(lines: Cell, indent: str) -> None:
        for number, (line, is_secret) in enumerate(lines):
            last = number == len(lines) - 1
            encoded = json.dumps(line if last else line + "\n")
            out.append(f"{indent}{encoded}{'' if last else ','}")
            if is_secret:
                marked.append(len(out))

    for index, (source, outputs) in enumerate(cells):
        out += ["  {", '   "cell_type": "code",', f'   "execution_count": {index + 1},', '   "metadata": {},']
        out.append('   "outputs": [')
        if outputs:
            out += ["    {", '     "name": "stdout",', '     "output_type": "stream",', '     "text": [']
            strings(outputs, "      ")
            out += ["     ]", "    }"]
        out.append("   ],")
        out.append('   "source": [')
        strings(source, "    ")
        out.append("   ]")
        out.append("  }," if index < len(cells) - 1 else "  }")
    out += [" ],", ' "metadata": {"kernelspec": {"name": "python3"}},', ' "nbformat": 4,', ' "nbformat_minor": 5', "}"]
    return out, marked
