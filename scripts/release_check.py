"""`make release-check`: build every package, install each into a fresh environment, and run each
client's README quick start from the installed package against a live server.

    .venv/bin/python scripts/release_check.py [--keep]

1. The version: `scripts/version.py` (every manifest holds VERSION) and the LICENSE copies.
2. Build: the server and client wheels and sdists (`python -m build`, `twine check --strict`, the
   metadata PyPI shows); the npm tarball (`npm pack`: ESM, types, exports map, metadata); the
   Maven jar, sources jar and javadoc jar (`mvn verify`, which runs the Spotless format check);
   the Go module as its release tag `clients/go/vX.Y.Z` would hold it (the tracked files of
   clients/go).
3. Install, each into build/release-check/<language>, made anew on every run: a new venv with the
   client wheel (dependencies from PyPI under constraints.txt) and one with the server wheel; an
   empty npm project with the tarball; a Go module that requires the client with a `replace` to
   the copied module; a Maven local repository holding the installed jars, and a project that
   depends on the client through it.
4. Run: the fenced block after each README's quick-start marker, written to a file verbatim, in
   its fresh environment, against a live server (scripts/client_fixture.py). Before each run the
   check asks that environment where the package resolves and fails unless it is inside
   build/release-check; the four outputs must be identical and show the fixture's detection.

Caches (pip, npm, ~/.m2, the Go module cache) are reused; the environments are not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import Parser
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "release-check"
CLIENTS = ROOT / "clients"
MARKER = "<!-- quick start: make release-check runs this block as written"
GO_MODULE = "github.com/chunkscope/chunkscope/clients/go"
# Each language's quick start prints these lines (and only these) against the fixture.
EXPECTED = [
    "health: SERVING",
    "{CHUNKSCOPE_TEST_MODEL} {CHUNKSCOPE_TEST_DICTIONARY} cat: fired 1 times",
]


class CheckFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"[release-check {time.monotonic() - START:6.1f}s] {message}", flush=True)


def run(
    command: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 900
) -> str:
    """Runs `command`; its stdout, or CheckFailed with the output's tail."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise CheckFailed(f"{' '.join(command)} (in {cwd}) exited {done.returncode}:\n{tail}")
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: nothing from this repository on any search path."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "NODE_PATH", "CLASSPATH", "GOFLAGS", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env.update(PYTHONNOUSERSITE="1", GOTOOLCHAIN="local", **extra)
    return env


def inside(path: str | Path, root: Path, what: str) -> None:
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise CheckFailed(f"{what} resolves to {resolved}, outside the fresh environment {root}")
    step(f"  {what} -> {resolved.relative_to(ROOT)}")


def quick_start(readme: Path, fence: str) -> str:
    """The fenced block right after the README's quick-start marker, as written."""
    text = readme.read_text()
    at = text.find(MARKER)
    if at < 0:
        raise CheckFailed(f"{readme}: no quick-start marker ({MARKER}...)")
    match = re.compile(rf"[^\n]*\n\n?```{fence}\n(.*?)\n```\n", re.S).match(text, at)
    if match is None:
        raise CheckFailed(f"{readme}: the marker is not followed by a ```{fence} block")
    head = text[:at]
    if not re.match(r"\A# [^\n]+\n\n```(sh|xml)\n", head):
        raise CheckFailed(f"{readme}: does not begin with the title and the install line")
    return match.group(1) + "\n"


# ----- 1. version ------------------------------------------------------------------------


def check_version() -> str:
    print(run([sys.executable, "scripts/version.py"]).strip())
    licence = (ROOT / "LICENSE").read_bytes()
    for language in ("python", "go", "typescript", "java"):
        if (CLIENTS / language / "LICENSE").read_bytes() != licence:
            raise CheckFailed(f"clients/{language}/LICENSE differs from LICENSE")
    return (ROOT / "VERSION").read_text().strip()


# ----- 2. build --------------------------------------------------------------------------


def build_python(version: str) -> dict[str, Path]:
    dist = OUT / "python" / "dist"
    for project in (ROOT, CLIENTS / "python"):
        run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(project)])
    for leftover in [*ROOT.glob("service/*.egg-info"), *CLIENTS.glob("python/src/*.egg-info")]:
        shutil.rmtree(leftover)
    shutil.rmtree(CLIENTS / "python" / "build", ignore_errors=True)
    files = {
        "server-wheel": dist / f"chunkscope-{version}-py3-none-any.whl",
        "server-sdist": dist / f"chunkscope-{version}.tar.gz",
        "client-wheel": dist / f"chunkscope_client-{version}-py3-none-any.whl",
        "client-sdist": dist / f"chunkscope_client-{version}.tar.gz",
    }
    for path in files.values():
        if not path.is_file():
            raise CheckFailed(f"python -m build did not make {path.name}: {os.listdir(dist)}")
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files.values())])
    for key in ("server-wheel", "client-wheel"):
        with zipfile.ZipFile(files[key]) as wheel:
            [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
            meta = Parser().parsestr(wheel.read(name).decode())
            licences = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        urls = meta.get_all("Project-URL") or []
        needed = {
            "Version": meta["Version"] == version,
            "License-Expression: Apache-2.0": meta["License-Expression"] == "Apache-2.0",
            "License-File in the wheel": bool(licences),
            "Author": bool(meta["Author"] or meta["Author-email"]),
            "Maintainer": bool(meta["Maintainer"] or meta["Maintainer-email"]),
            "Keywords": bool(meta["Keywords"]),
            "Classifiers": len(meta.get_all("Classifier") or []) >= 5,
            "Project-URLs (Homepage, Repository, Issues, Changelog)": all(
                any(u.startswith(f"{k}, https://") for u in urls)
                for k in ("Homepage", "Repository", "Issues", "Changelog")
            ),
            "Description-Content-Type: text/markdown": meta["Description-Content-Type"]
            == "text/markdown",
        }
        missing = [k for k, ok in needed.items() if not ok]
        if missing:
            raise CheckFailed(f"{files[key].name}: metadata lacks {missing}")
    if f"chunkscope-client=={version}" not in run_metadata(files["server-wheel"]):
        raise CheckFailed("the server wheel does not require chunkscope-client of its version")
    step(f"  python: {', '.join(p.name for p in files.values())}; twine check --strict passed")
    return files


def run_metadata(wheel_path: Path) -> str:
    with zipfile.ZipFile(wheel_path) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return wheel.read(name).decode()


def build_typescript(version: str) -> Path:
    package = CLIENTS / "typescript"
    run(["bash", "-c", "source ./deps.sh && ensure_node_modules"], cwd=package)
    shutil.rmtree(package / "dist", ignore_errors=True)
    run(["./node_modules/.bin/tsc", "-p", "tsconfig.json"], cwd=package)
    out = OUT / "typescript"
    out.mkdir(parents=True)
    packed = json.loads(run(["npm", "pack", "--json", "--pack-destination", str(out)], package))
    tarball = out / packed[0]["filename"]
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        member = tar.extractfile("package/package.json")
        assert member is not None
        manifest = json.load(member)
    shipped = ("dist/index.js", "dist/index.d.ts", "dist/gen/chunkscope/v1/models_pb.d.ts",
               "LICENSE", "README.md")  # fmt: skip
    for needed in (f"package/{name}" for name in shipped):
        if needed not in names:
            raise CheckFailed(f"{tarball.name} lacks {needed}")
    if any(n.startswith(("package/test/", "package/node_modules/")) for n in names):
        raise CheckFailed(f"{tarball.name} ships tests or node_modules")
    root_export = manifest.get("exports", {}).get(".", {})
    needed_fields = {
        "version": manifest.get("version") == version,
        "type: module": manifest.get("type") == "module",
        "license: Apache-2.0": manifest.get("license") == "Apache-2.0",
        "repository (git, directory)": isinstance(manifest.get("repository"), dict)
        and manifest["repository"].get("directory") == "clients/typescript",
        "homepage": str(manifest.get("homepage", "")).startswith("https://"),
        "bugs": bool(manifest.get("bugs")),
        "keywords": len(manifest.get("keywords", [])) >= 3,
        "author": bool(manifest.get("author")),
        "files": bool(manifest.get("files")),
        "engines.node": bool(manifest.get("engines", {}).get("node")),
        "exports['.'] with types first, then import": list(root_export)[:2] == ["types", "import"],
        "types": manifest.get("types") == "./dist/index.d.ts",
    }
    missing = [k for k, ok in needed_fields.items() if not ok]
    if missing:
        raise CheckFailed(f"{tarball.name}: package.json lacks or has wrong {missing}")
    step(f"  typescript: {tarball.name} ({len(names)} files)")
    return tarball


def build_java(version: str) -> dict[str, Path]:
    java = CLIENTS / "java"
    run(["mvn", "-B", "--no-transfer-progress", "-Dstyle.color=never", "-DskipTests", "verify"],
        cwd=java)  # fmt: skip
    target = java / "target"
    jars = {
        "jar": target / f"chunkscope-client-{version}.jar",
        "sources": target / f"chunkscope-client-{version}-sources.jar",
        "javadoc": target / f"chunkscope-client-{version}-javadoc.jar",
    }
    for path in jars.values():
        if not path.is_file():
            raise CheckFailed(f"mvn verify did not make {path.name}")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ElementTree.parse(java / "pom.xml").getroot()
    for field in ("m:version", "m:name", "m:description", "m:url",
                  "m:licenses/m:license/m:name", "m:licenses/m:license/m:url",
                  "m:developers/m:developer/m:name", "m:scm/m:connection",
                  "m:scm/m:developerConnection", "m:scm/m:url"):  # fmt: skip
        node = pom.find(field, ns)
        if node is None or not (node.text or "").strip():
            raise CheckFailed(f"clients/java/pom.xml lacks {field.replace('m:', '')}")
    if pom.findtext("m:version", namespaces=ns) != version or version.endswith("-SNAPSHOT"):
        raise CheckFailed(f"clients/java/pom.xml's version is not the release {version}")
    step(f"  java: {', '.join(p.name for p in jars.values())} (spotless:check passed)")
    return jars


def build_go() -> Path:
    """The module as the tag clients/go/vX.Y.Z would serve it: the tracked files of clients/go."""
    module = OUT / "go" / "module"
    for name in run(["git", "ls-files", "clients/go"]).splitlines():
        target = module / Path(name).relative_to("clients/go")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    step(f"  go: {sum(1 for _ in module.rglob('*.go'))} Go files of {GO_MODULE}")
    return module


# ----- 3. install ------------------------------------------------------------------------


def install_python(files: dict[str, Path]) -> Path:
    """A new venv with the client wheel and its dependencies; the server wheel in another."""
    venv = OUT / "python" / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(files["client-wheel"])],
        cwd=OUT, env=clean_env())  # fmt: skip
    # The server's dependencies (torch, transformers, ...) are gigabytes: its venv gets the two
    # wheels alone and reads third-party packages from the project's venv through a .pth line,
    # after its own site-packages, so chunkscope itself still resolves to the installed wheel.
    server = OUT / "python" / "server-venv"
    run([sys.executable, "-m", "venv", str(server)])
    run([str(server / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", str(files["server-wheel"]), str(files["client-wheel"])],
        cwd=OUT, env=clean_env())  # fmt: skip
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    shared = run([sys.executable, "-c", purelib])
    own = run([str(server / "bin" / "python"), "-c", purelib], env=clean_env())
    (Path(own.strip()) / "zz-project-venv.pth").write_text(shared.strip() + "\n")
    where = run([str(server / "bin" / "python"), "-c",
                 "import chunkscope, chunkscope.server, chunkscope_client; "
                 "print(chunkscope.__file__); print(chunkscope_client.__file__)"],
                cwd=OUT, env=clean_env()).split()  # fmt: skip
    inside(where[0], server, "server venv: chunkscope")
    inside(where[1], server, "server venv: chunkscope_client")
    version = run([str(server / "bin" / "chunkscope"), "--version"], cwd=OUT, env=clean_env())
    if version.strip() != (ROOT / "VERSION").read_text().strip():
        raise CheckFailed(f"the installed server says --version {version.strip()}")
    step(f"  python: client venv and server venv (chunkscope --version: {version.strip()})")
    return python


def install_typescript(tarball: Path) -> Path:
    project = OUT / "typescript" / "project"
    project.mkdir()
    dev = json.loads((CLIENTS / "typescript" / "package.json").read_text())["devDependencies"]
    (project / "package.json").write_text(json.dumps(
        {"name": "quickstart", "private": True, "type": "module"}, indent=2) + "\n")  # fmt: skip
    (project / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
        "strict": True, "types": ["node"], "outDir": "out", "skipLibCheck": False,
    }, "include": ["quickstart.ts"]}, indent=2))  # fmt: skip
    run(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts",
         "--loglevel=error", str(tarball), f"typescript@{dev['typescript']}",
         f"@types/node@{dev['@types/node']}"], cwd=project, env=clean_env())  # fmt: skip
    resolved = run(["node", "--input-type=module", "-e",
                    "console.log(new URL(import.meta.resolve('@chunkscope/client')).pathname)"],
                   cwd=project, env=clean_env())  # fmt: skip
    inside(resolved.strip(), project / "node_modules", "typescript: @chunkscope/client")
    return project


def install_go(module: Path) -> Path:
    app = OUT / "go" / "app"
    app.mkdir(parents=True)
    (app / "go.mod").write_text(
        "module example.com/quickstart\n\ngo 1.26.0\n\n"
        f"require {GO_MODULE} v{(ROOT / 'VERSION').read_text().strip()}\n\n"
        f"replace {GO_MODULE} => {module}\n"
    )
    return app


def install_java(jars: dict[str, Path], version: str) -> tuple[Path, str]:
    """The jars into a new local repository; a project that depends on them through it."""
    java = OUT / "java"
    repo = java / "m2"
    java.mkdir(parents=True)
    run(["mvn", "-B", "-q", "--no-transfer-progress",
         "org.apache.maven.plugins:maven-install-plugin:3.1.4:install-file",
         f"-Dfile={jars['jar']}", f"-DpomFile={CLIENTS / 'java' / 'pom.xml'}",
         f"-Dsources={jars['sources']}", f"-Djavadoc={jars['javadoc']}",
         f"-DlocalRepositoryPath={repo}"], cwd=java, env=clean_env())  # fmt: skip
    installed = repo / "dev" / "chunkscope" / "chunkscope-client" / version
    for suffix in ("", "-sources", "-javadoc"):
        if not (installed / f"chunkscope-client-{version}{suffix}.jar").is_file():
            raise CheckFailed(f"install-file left no chunkscope-client-{version}{suffix}.jar")
    app = java / "app"
    app.mkdir()
    # Third-party artifacts come from ~/.m2 as a file:// repository (a cache, copied into the new
    # local repository), and from Maven Central for anything it lacks.
    cache = (Path.home() / ".m2" / "repository").as_uri()
    (app / "pom.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>quickstart</artifactId>
  <version>1</version>
  <repositories><repository><id>m2-cache</id><url>{cache}</url></repository></repositories>
  <pluginRepositories>
    <pluginRepository><id>m2-cache</id><url>{cache}</url></pluginRepository>
  </pluginRepositories>
  <dependencies>
    <dependency>
      <groupId>dev.chunkscope</groupId>
      <artifactId>chunkscope-client</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
""")
    run(["mvn", "-B", "-q", "--no-transfer-progress", f"-Dmaven.repo.local={repo}",
         "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath",
         "-Dmdep.outputFile=classpath.txt"], cwd=app, env=clean_env())  # fmt: skip
    classpath = (app / "classpath.txt").read_text().strip()
    [client_jar] = [p for p in classpath.split(os.pathsep) if "chunkscope-client" in p]
    inside(client_jar, repo, "java: chunkscope-client jar")
    return app, classpath


# ----- 4. run ----------------------------------------------------------------------------


def run_python(python: Path, env: dict[str, str]) -> str:
    script = OUT / "python" / "quickstart.py"
    script.write_text(quick_start(CLIENTS / "python" / "README.md", "python"))
    where = run([str(python), "-c", "import chunkscope_client, importlib.metadata as m; "
                 "print(chunkscope_client.__file__); print(m.version('chunkscope-client'))"],
                cwd=script.parent, env=env).split()  # fmt: skip
    inside(where[0], python.parent.parent, "python: chunkscope_client")
    if where[1] != (ROOT / "VERSION").read_text().strip():
        raise CheckFailed(f"the installed chunkscope-client is version {where[1]}")
    return run([str(python), script.name], cwd=script.parent, env=env, timeout=300)


def run_typescript(project: Path, env: dict[str, str]) -> str:
    (project / "quickstart.ts").write_text(
        quick_start(CLIENTS / "typescript" / "README.md", "ts"))  # fmt: skip
    run(["./node_modules/.bin/tsc", "-p", "tsconfig.json"], cwd=project, env=env)
    return run(["node", "out/quickstart.js"], cwd=project, env=env, timeout=300)


def run_go(app: Path, module: Path, env: dict[str, str]) -> str:
    (app / "main.go").write_text(quick_start(CLIENTS / "go" / "README.md", "go"))
    unformatted = run(["gofmt", "-l", "main.go"], cwd=app, env=env).strip()
    if unformatted:
        raise CheckFailed("the Go quick start in clients/go/README.md is not gofmt-formatted")
    run(["go", "mod", "tidy"], cwd=app, env=env)
    resolved = run(["go", "list", "-m", "-f", "{{.Dir}}", GO_MODULE], cwd=app, env=env).strip()
    inside(resolved, module, f"go: {GO_MODULE}")
    run(["go", "vet", "."], cwd=app, env=env)
    run(["go", "build", "-o", "quickstart", "."], cwd=app, env=env)
    return run([str(app / "quickstart")], cwd=app, env=env, timeout=300)


def run_java(app: Path, classpath: str, env: dict[str, str]) -> str:
    (app / "QuickStart.java").write_text(quick_start(CLIENTS / "java" / "README.md", "java"))
    return run(["java", "-cp", classpath, "QuickStart.java"], cwd=app, env=env, timeout=300)


# ----- main ------------------------------------------------------------------------------


@contextmanager
def live_server(workdir: Path) -> Iterator[dict[str, str]]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import client_fixture

    with client_fixture.fixture(workdir) as env:
        yield env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    try:
        step("version")
        version = check_version()
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        step("build: python")
        wheels = build_python(version)
        step("build: typescript")
        tarball = build_typescript(version)
        step("build: java")
        jars = build_java(version)
        step("build: go")
        module = build_go()
        step("install: python")
        python = install_python(wheels)
        step("install: typescript")
        project = install_typescript(tarball)
        step("install: java")
        app, classpath = install_java(jars, version)
        step("install: go")
        go_app = install_go(module)
        step("live server (scripts/client_fixture.py)")
        with (
            tempfile.TemporaryDirectory(prefix="chunkscope-release-") as tmp,
            live_server(Path(tmp)) as fixture,
        ):
            env = clean_env(CHUNKSCOPE_ADDRESS=fixture["CHUNKSCOPE_TEST_ADDRESS"],
                            CHUNKSCOPE_TOKEN=fixture["CHUNKSCOPE_TEST_TOKEN"])  # fmt: skip
            outputs: dict[str, str] = {}
            for language, runner in (
                ("python", lambda: run_python(python, env)),
                ("typescript", lambda: run_typescript(project, env)),
                ("go", lambda: run_go(go_app, module, env)),
                ("java", lambda: run_java(app, classpath, env)),
            ):
                step(f"quick start: {language}")
                outputs[language] = runner()
                sys.stdout.write("".join(f"    {line}\n" for line in
                                         outputs[language].splitlines()))  # fmt: skip
        expected = [line.format(**fixture) for line in EXPECTED]
        lines = outputs["python"].splitlines()
        if lines[:1] != expected[:1] or expected[1] not in lines:
            raise CheckFailed(f"the Python quick start printed {lines}, expected {expected}")
        for language, output in outputs.items():
            if output != outputs["python"]:
                raise CheckFailed(f"the {language} quick start printed\n{output}\nnot\n"
                                  f"{outputs['python']}")  # fmt: skip
    except CheckFailed as failure:
        print(f"release-check FAILED: {failure}", file=sys.stderr)
        return 1
    step(f"passed: version {version}, every package built, installed fresh and its quick start run")
    return 0


START = time.monotonic()

if __name__ == "__main__":
    sys.exit(main())
