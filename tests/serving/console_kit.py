"""Helpers of the console tests (imported by name; conftest puts this folder on
``sys.path``): the keys, the server environment, and the browser checks."""

from __future__ import annotations

import json
from typing import Any

from serving_testkit import KEYS

from serving.settings import hash_key

REP_KEYS: dict[str, str] = {
    "R1": "test-key-console-rep-r1-77aa",
    "R2": "test-key-console-rep-r2-3b9c",
}
CONSOLE_SECRET = "test-console-secret-0123456789abcdef-not-for-production"


def console_keys() -> list[dict[str, Any]]:
    """The scope keys of serving_testkit plus one key per rep."""
    return [
        {"name": f"{scope}-client", "sha256": hash_key(key), "scopes": [scope]}
        for scope, key in KEYS.items()
    ] + [
        {"name": f"rep-{rep}", "sha256": hash_key(key), "scopes": [f"rep:{rep}"]}
        for rep, key in REP_KEYS.items()
    ]


def console_env() -> dict[str, str]:
    return {"NBA_API_KEYS": json.dumps(console_keys()), "NBA_CONSOLE_SECRET": CONSOLE_SECRET}


#: every visible control (and image) must have an accessible name; returns the
#: offenders' HTML, empty when all are labelled
UNLABELLED_JS = """
() => {
  const bad = [];
  const text = (el) => (el ? el.textContent || '' : '');
  const controls = document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, a[href], [role=button]');
  for (const el of controls) {
    let name = el.getAttribute('aria-label') || '';
    const by = el.getAttribute('aria-labelledby');
    if (!name.trim() && by) {
      name = by.split(/\\s+/).map((id) => text(document.getElementById(id))).join(' ');
    }
    if (!name.trim() && el.labels) {
      name = Array.from(el.labels).map(text).join(' ');
    }
    if (!name.trim() && ['BUTTON', 'A'].includes(el.tagName)) {
      name = el.textContent || '';
    }
    if (!name.trim()) bad.push(el.outerHTML.slice(0, 160));
  }
  for (const img of document.querySelectorAll('img')) {
    if (!(img.getAttribute('alt') || '').trim()) bad.push(img.outerHTML.slice(0, 160));
  }
  for (const svg of document.querySelectorAll('svg')) {
    if (!svg.querySelector('title') && !svg.getAttribute('aria-label')) {
      bad.push(svg.outerHTML.slice(0, 160));
    }
  }
  return bad;
}
"""
