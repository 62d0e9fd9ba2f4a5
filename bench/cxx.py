#!/usr/bin/env python3
"""The C++ benchmark: a real CMake C++ project, abseil-heavy, through
recast next to plain g++ and ccache.

The project is protobuf 27.1 with its abseil-cpp, as the `protobuf-src`
crate vendors them (fetched into cargo's registry with `cargo fetch` if
it is not there yet). CMake configures it (Release, no tests, no protoc)
and `cmake --build --target libprotobuf-lite -j2` builds the lite
library and the abseil libraries it needs, every translation unit with
CMake's `-MD` depfile. For each tool, in its own build directory:

  cold   every compile misses (recast: a fresh cache dir, so the
         embedded server starts empty; ccache: an empty cache)
  warm   `cmake --build --target clean`, then the same build: every
         compile hits

recast runs with nothing configured (the embedded server; misses compile
here, `RECAST_MODE=auto`), and as `recast exec` with the embedded server
executing every miss in its sandbox (`RECAST_MODE=remote`). Prints
medians of --runs runs and the ratios issue 22 aims at. Standard library
only; `bench/cxx.sh` builds the release binary and calls this.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cc import fmt  # noqa: E402

CRATE = "protobuf-src"
VERSION = "2.1.1+27.1"


def registry_copy():
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(home.glob(f"registry/src/*/{CRATE}-{VERSION}/protobuf"))
    return found[-1] if found else None


def fetch():
    """protobuf's sources from crates.io, through cargo's own registry."""
    found = registry_copy()
    if found:
        return found
    print(f"bench: fetching {CRATE} {VERSION} with cargo fetch (once)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "src").mkdir()
        (p / "src/main.rs").write_text("fn main() {}\n")
        (p / "Cargo.toml").write_text(
            '[package]\nname = "fetch-protobuf"\nversion = "0.0.0"\nedition = "2021"\n'
            f'[dependencies]\n{CRATE} = "={VERSION}"\n')
        subprocess.run(["cargo", "fetch", "--quiet"], cwd=p, check=True)
    found = registry_copy()
    if not found:
        sys.exit(f"{CRATE} {VERSION} is not in cargo's registry after cargo fetch")
    return found


def configure(src, build, env, launcher=None):
    args = ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            "-Dprotobuf_BUILD_TESTS=OFF", "-Dprotobuf_ABSL_PROVIDER=module",
            "-Dprotobuf_BUILD_PROTOC_BINARIES=OFF",
            "-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++"]
    if launcher:
        args += [f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}",
                 f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}"]
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def build(build_dir, env, clean=True):
    if clean:
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "clean"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.monotonic()
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "libprotobuf-lite",
                    "-j2"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def objects(build_dir):
    return {str(p.relative_to(build_dir)): p.read_bytes()
            for p in build_dir.rglob("*.o") if "CMakeFiles/3." not in str(p)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    recast = str(Path(args.recast).resolve())
    ccache = shutil.which("ccache")
    upstream = fetch()

    tmp = Path(tempfile.mkdtemp(prefix="recast-bench-cxx-"))
    results = {}
    try:
        src = tmp / "proj" / "protobuf"
        shutil.copytree(upstream, src, symlinks=True)
        (tmp / "proj" / ".git").mkdir()
        base = dict(os.environ)
        for k in ["RECAST_REMOTE", "RECAST_MODE", "RECAST_PROJECT_ROOT", "CCACHE_DIR"]:
            base.pop(k, None)

        def tool(name, env, launcher, fresh):
            b = tmp / "proj" / f"build-{name.replace(' ', '-')}"
            configure(src, b, env, launcher)
            cold, warm = [], []
            for _ in range(args.runs):
                fresh()
                cold.append(build(b, env))
                warm.append(build(b, env))
            results[name] = dict(cold=statistics.median(cold), warm=statistics.median(warm),
                                 objects=objects(b))

        b = tmp / "proj" / "build-plain"
        configure(src, b, base)
        times = [build(b, base) for _ in range(args.runs)]
        results["g++"] = dict(cold=statistics.median(times), warm=None, objects=objects(b))

        if ccache:
            cdir = tmp / "ccache"
            tool("ccache", dict(base, CCACHE_DIR=str(cdir), CCACHE_NOHASHDIR="1"), ccache,
                 lambda: shutil.rmtree(cdir, ignore_errors=True))

        for name, mode in [("recast", None), ("recast exec", "remote")]:
            cache = tmp / f"cache-{name.replace(' ', '-')}"
            env = dict(base, RECAST_CACHE_DIR=str(cache), RECAST_CONFIG=str(tmp / "none.toml"))
            if mode:
                env["RECAST_MODE"] = mode

            def fresh(env=env, cache=cache):
                subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                shutil.rmtree(cache, ignore_errors=True)
            tool(name, env, recast, fresh)
            stats = subprocess.run([recast, "stats"], env=env, capture_output=True,
                                   text=True).stdout
            results[name]["stats"] = stats
            subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    plain = results["g++"]
    n = len(plain["objects"])
    print(f"\nprotobuf {VERSION.split('+')[1]} + abseil, cmake --build --target "
          f"libprotobuf-lite -j2 (Release), {n} translation units; medians of {args.runs}\n")
    print(f"{'tool':<14}{'cold':>12}{'warm':>12}{'cold / g++':>12}  objects as g++'s")
    for name, r in results.items():
        warm = fmt(r["warm"]) if r["warm"] is not None else "     —     "
        same = sum(1 for k, v in r["objects"].items() if plain["objects"].get(k) == v)
        print(f"{name:<14}{fmt(r['cold']):>12}{warm:>12}{r['cold'] / plain['cold']:>11.2f}x"
              f"  {same} of {n}")
    print("\nrecast cold / g++: "
          f"{results['recast']['cold'] / plain['cold']:.2f} (aim ≤ 1.10)")
    if "ccache" in results:
        c = results["ccache"]
        print(f"recast warm / ccache warm: {results['recast']['warm'] / c['warm']:.2f}; "
              f"ccache cold / g++: {c['cold'] / plain['cold']:.2f}")
    for name in ["recast", "recast exec"]:
        print(f"\n{name}: recast stats after its last warm build\n{results[name]['stats']}")


if __name__ == "__main__":
    main()
