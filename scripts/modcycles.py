#!/usr/bin/env python3
"""Import circles between Portcullis' top-level modules.

Reads every `crate::NAME` (and `use crate::{A, B}`) reference outside the
unit tests of each file under SRC_DIR (default `src`), builds the graph of
top-level modules, and prints each strongly connected component of more
than one module. Exits 1 when there is one: each module should depend only
downward (docs/design.md, "Module map").

Usage: scripts/modcycles.py [SRC_DIR]
"""
import os
import re
import sys


def graph(root):
    edges = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), root)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in ("main", "lib"):
                continue
            with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
                src = re.split(r"#\[cfg\(test\)\]\s*mod tests", fh.read())[0]
            names = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", src))
            for group in re.findall(r"use crate::\{([^}]*)\}", src):
                names.update(p.strip().split("::")[0].strip() for p in group.split(","))
            mods = edges.setdefault(top, set())
            for n in names:
                if n != top and re.fullmatch(r"[a-z_][a-z0-9_]*", n):
                    mods.add(n)
    known = set(edges)
    return {k: {v for v in vs if v in known} for k, vs in edges.items()}


def circles(g):
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    g = graph(sys.argv[1] if len(sys.argv) > 1 else "src")
    found = circles(g)
    for c in found:
        print("circle: " + ", ".join(c))
    print(f"{len(found)} circles among {len(g)} modules")
    sys.exit(1 if found else 0)
