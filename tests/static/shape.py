#!/usr/bin/env python3
"""shape.py -- static checks on the shape of the C sources (part of `make test`).

Over every .c/.h file in common/ dns/ edge/ origin/ (sub-folders included):
  1. no file over 900 lines;
  2. no function over 120 lines, brace-initialised tables inside it not counted
     (file-level tables are not functions and are never counted);
  3. no comment that names a work item (the word for a tracker entry
     followed by its number);
  4. no #include circle between modules: a module is a .c/.h pair (its path
     without the extension); module A depends on B when A.c includes B.h,
     directly or through other headers (what A's code can call or use); every
     cycle in that graph is reported with the #include lines that make it.
     A header without a .c (a wing's private header) is a module with no
     dependencies of its own: including the public header from it is no circle.
Each rule prints one PASS:/FAIL: line, offenders indented below it.  Before
that, the same scanner runs on a small tree with planted violations of each
rule and look-alikes that are not violations, and must report exactly the
planted ones (so this check cannot pass by finding nothing).

Usage: tests/static/shape.py [ROOT]   (ROOT defaults to the repository)
"""
import os
import re
import sys
import tempfile

DIRS = ("common", "dns", "edge", "origin")
MAX_FILE_LINES = 900
MAX_FUNC_LINES = 120
ISSUE_RE = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
NAME = "source-shape"


def sources(root):
    out = []
    for d in DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return out


def split_code(text):
    """Returns (code, comments): code is text with comments, string and
    character literals and preprocessor lines blanked (newlines kept, so
    offsets map to the same lines); comments is a list of (line, text)."""
    code = []
    comments = []
    i, n, line = 0, len(text), 1
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            # a preprocessor line, with its backslash continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    code.append(" \n")
                    line += 1
                    i += 2
                    continue
                if text.startswith(("/*", "//"), i):
                    break  # a comment after the directive is handled below
                code.append(" ")
                i += 1
            at_line_start = False
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            body = text[i:j]
            comments.append((line, body))
            code.append("".join("\n" if ch == "\n" else " " for ch in body))
            line += body.count("\n")
            i = j
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            comments.append((line, text[i:j]))
            code.append(" " * (j - i))
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            code.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
            at_line_start = False
            continue
        code.append(c)
        if c == "\n":
            line += 1
            at_line_start = True
        elif not c.isspace():
            at_line_start = False
        i += 1
    return "".join(code), comments


def functions(code):
    """Yields (name, first_line, length) for each function definition: a
    brace block at file level whose header ends with ')' and has no '='."""
    depth = 0
    header_start = 0
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c == "{" and depth == 0:
            header = code[header_start:i]
            h = header.strip()
            close = match_brace(code, i)
            if h.endswith(")") and "=" not in strip_parens(h):
                m = re.search(r"([A-Za-z_]\w*)\s*\(", h)
                name = m.group(1) + "()" if m else "?"
                if m and m.group(1).isupper():  # defined through a macro: show its use
                    name = " ".join(h[h.index(m.group(0)):].split())[:60]
                name_off = header_start + header.index(m.group(0)) if m else i
                first = code.count("\n", 0, name_off) + 1
                last = code.count("\n", 0, close) + 1
                yield name, first, last - first + 1 - table_lines(code, i, close)
            i = close + 1
            header_start = i
            continue
        if c == ";" and depth == 0:
            header_start = i + 1
        i += 1


def strip_parens(s):
    out, d = [], 0
    for ch in s:
        if ch == "(":
            d += 1
        elif ch == ")":
            d -= 1
        elif d == 0:
            out.append(ch)
    return "".join(out)


def match_brace(code, i):
    d = 0
    for j in range(i, len(code)):
        if code[j] == "{":
            d += 1
        elif code[j] == "}":
            d -= 1
            if d == 0:
                return j
    return len(code) - 1


def table_lines(code, open_, close):
    """Lines of a function body taken by brace initialisers ('= {' ... '}')."""
    skipped = 0
    i = open_ + 1
    while i < close:
        if code[i] == "{" and code[:i].rstrip().endswith("="):
            end = match_brace(code, i)
            skipped += code.count("\n", i, end)
            i = end + 1
            continue
        i += 1
    return skipped


def includes(root, path, text, known):
    """(line, header path) for each project header that path includes."""
    out = []
    for ln, raw in enumerate(text.split("\n"), 1):
        m = INCLUDE_RE.match(raw)
        if not m:
            continue
        for cand in (m.group(1), os.path.join(os.path.dirname(path), m.group(1))):
            cand = os.path.normpath(cand)
            if cand in known:
                out.append((ln, cand))
                break
    return out


def reached_headers(path, direct):
    """Every project header path includes, directly or through headers, each
    with the chain of #include lines that first reaches it (breadth first)."""
    seen = {}
    queue = [(path, "")]
    while queue:
        f, chain = queue.pop(0)
        for ln, hdr in direct.get(f, ()):
            if hdr in seen or hdr == path:
                continue
            seen[hdr] = (chain + "; " if chain else "") + "%s:%d includes %s" % (f, ln, hdr)
            queue.append((hdr, seen[hdr]))
    return sorted(seen.items())


def module(path):
    return os.path.splitext(path)[0]


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def shortest_cycle(graph, start, members):
    """A shortest path start -> ... -> start inside one component (BFS)."""
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def scan(root):
    """Returns {rule: [offender lines]} for the four rules."""
    files = sources(root)
    known = set(files)
    found = {"files": [], "functions": [], "comments": [], "cycles": []}
    graph, why, direct = {}, {}, {}
    for path in files:
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        nlines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if nlines > MAX_FILE_LINES:
            found["files"].append("%s: %d lines (max %d)" % (path, nlines, MAX_FILE_LINES))
        code, comments = split_code(text)
        # .h files too: a static inline function there counts like any other
        for name, first, length in functions(code):
            if length > MAX_FUNC_LINES:
                found["functions"].append("%s:%d: %s is %d lines (max %d)"
                                          % (path, first, name, length, MAX_FUNC_LINES))
        for ln, body in comments:
            for k, cl in enumerate(body.split("\n")):
                m = ISSUE_RE.search(cl)
                if m:
                    found["comments"].append("%s:%d: comment names a work item: %r"
                                             % (path, ln + k, cl.strip()[:100]))
        direct[path] = includes(root, path, text, known)
    for path in files:
        if not path.endswith(".c"):
            continue
        src = module(path)
        for hdr, chain in reached_headers(path, direct):
            dst = module(hdr)
            if dst != src:
                graph.setdefault(src, set()).add(dst)
                why.setdefault((src, dst), chain)
    for comp in cycles(graph):
        members = set(comp)
        cyc = shortest_cycle(graph, comp[0], members)
        found["cycles"].append("circle of %d modules: %s" % (len(comp), " ".join(comp)))
        found["cycles"].append("  e.g. " + " -> ".join(cyc))
        for a, b in zip(cyc, cyc[1:]):
            found["cycles"].append("    " + why[(a, b)])
    return found


RULES = (
    ("files", "no source file over %d lines" % MAX_FILE_LINES),
    ("functions", "no function over %d lines (tables excepted)" % MAX_FUNC_LINES),
    ("comments", "no comment names a work item (issue N)"),
    ("cycles", "no #include circle between modules"),
)


def self_test():
    """The scanner on a planted tree: violations of each rule, plus
    look-alikes it must not report.  Returns what it got wrong."""
    def fn(name, lines):  # a function of exactly `lines` lines
        return "int %s(int x)\n{\n" % name + "\tx++;\n" * (lines - 4) + "\treturn x;\n}\n"
    table_fn = ("int table_fn(int i)\n{\n\tstatic const int t[] = {\n" + "\t\t1,\n" * 200 +
                "\t};\n\treturn t[i];\n}\n")
    struct_big = "struct big {\n" + "\tint f;\n" * 200 + "};\n"
    # The planted work-item words are assembled so this file names none itself.
    wi = "iss" + "ue"
    tree = {
        "edge/a.c": '#include "edge/a.h"\n#include "edge/b.h"\n/* see ' + wi + ' 7 for why */\n'
                    '/* not a work item: t' + wi + ' 3 */\n'
                    'const char *s = "' + wi + ' 4 {";\n' + fn("long_fn", MAX_FUNC_LINES + 1) +
                    fn("max_fn", MAX_FUNC_LINES) + table_fn,
        "edge/a.h": "int a(void);\n",
        "edge/b.c": '#include "b.h"\n#include "edge/c.h"\nint b(void) { return 0; }\n',
        "edge/b.h": "int b(void);\n",
        "edge/c.c": '#include "edge/a.h"\n',
        "edge/c.h": "",
        "dns/big.c": "int x;\n" * (MAX_FILE_LINES + 1),
        "dns/ok.h": struct_big + "#define M { \\\n\t0 }\n" + fn("inline_fn", MAX_FUNC_LINES + 5),
        "dns/tab.c": "static const int tab[] = {\n" + "\t1,\n" * 200 + "};\n#include \"dns/ok.h\" // " + wi + " 9\n",
        "origin/d.c": '#include "origin/e.h"\nstatic int short_fn(void)\n{\n\treturn 1;\n}\n',
        "origin/e.c": '#include "origin/e.h"\n',  # d -> e only, and e's own header: no circle
        "origin/d.h": "", "origin/e.h": "",
        # p.c reaches r.h through q.h, r.c includes p.h: a circle p -> r -> p
        "common/p.c": '#include "common/q.h"\n', "common/p.h": "",
        "common/q.h": '#include "common/r.h"\n',
        "common/r.c": '#include "common/p.h"\n', "common/r.h": "",
        # a private header (no .c) that includes the public one: no circle
        "dns/w.c": '#include "dns/w_int.h"\n', "dns/w.h": "",
        "dns/w_int.h": '#include "dns/w.h"\n', "dns/x.c": '#include "dns/w_int.h"\n',
    }
    with tempfile.TemporaryDirectory(prefix="minicdn-shape-") as d:
        for p, t in tree.items():
            os.makedirs(os.path.join(d, os.path.dirname(p)), exist_ok=True)
            with open(os.path.join(d, p), "w") as f:
                f.write(t)
        got = scan(d)
    problems = []
    if len(got["files"]) != 1 or not got["files"][0].startswith("dns/big.c:"):
        problems.append("files: %r" % got["files"])
    if (len(got["functions"]) != 2 or "dns/ok.h:" not in got["functions"][0]
            or "long_fn() is %d lines" % (MAX_FUNC_LINES + 1) not in got["functions"][1]):
        problems.append("functions: %r" % got["functions"])
    if (len(got["comments"]) != 2 or not got["comments"][0].startswith("dns/tab.c:203:")
            or not got["comments"][1].startswith("edge/a.c:3:")):
        problems.append("comments: %r" % got["comments"])
    circles = sorted(x for x in got["cycles"] if x.startswith("circle"))
    if circles != ["circle of 2 modules: common/p common/r", "circle of 3 modules: edge/a edge/b edge/c"]:
        problems.append("cycles: %r" % got["cycles"])
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    failed = False
    problems = self_test()
    if problems:
        failed = True
        print("FAIL: %s: the checker misses or invents planted violations:" % NAME)
        for p in problems:
            print("    " + p)
    else:
        print("PASS: %s: the checker finds the planted violations of each rule, nothing else" % NAME)
    found = scan(root)
    for key, title in RULES:
        if found[key]:
            failed = True
            n = sum(1 for x in found[key] if not x.startswith(" "))
            print("FAIL: %s: %s (%d offender%s):" % (NAME, title, n, "" if n == 1 else "s"))
            for x in found[key]:
                print("    " + x)
        else:
            print("PASS: %s: %s" % (NAME, title))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
