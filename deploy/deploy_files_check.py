#!/usr/bin/python3
"""Checks deploy/ against the code it deploys.

The Dockerfile and the Kubernetes manifests name paths, CMake targets,
packages, flags, ports and files that live elsewhere in the repository and
change there. This check fails when they drift apart:

Dockerfile
  - every COPY source exists and is not excluded by .dockerignore;
  - the COPY set of the build stage is enough to configure the project
    (CMake is run on a copy of exactly those paths), and the targets the
    build stage builds exist there, with their binaries where the runtime
    stage copies them from;
  - the build stage installs only packages of scripts/setup's list, and the
    runtime stage exactly the packages of the shared libraries the built
    binaries load (ldd + dpkg -S), besides the base image's;
  - ENTRYPOINT/CMD flags and ENV SIDESTREAM_* variables name real flags.
Kubernetes (deploy/kubernetes/*.yaml)
  - the sidestream container's --flags and SIDESTREAM_* variables name real
    flags (`sidestream --helpfull`), and the binary accepts their values and
    actually reads each variable (it shows up as "currently:");
  - container ports, probes (/healthz and /readyz on the admin port), the
    Prometheus annotations, the Service and the Ingress agree with the
    listen flags and --webhook_path;
  - the secure-default rules: a non-loopback gRPC or admin address has a
    tokens file; runAsNonRoot, the Dockerfile's uid, a read-only root with
    /tmp mounted, no capabilities; secrets only as files from Secret volumes
    whose keys exist; the data directory on a PersistentVolumeClaim;
    terminationGracePeriodSeconds above --shutdown_grace.

Standard library only. Usage:
  deploy_files_check.py --source_dir DIR --bin_dir DIR --cmake CMAKE [--generator G]
"""
import argparse
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minimal_yaml  # noqa: E402

# Packages every debian:12-slim image already has (Essential or required by
# apt itself), so the runtime stage need not list them.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
# Variables the server reads that are not flags (README, "Configuration").
ENV_ONLY_VARIABLES = {"SIDESTREAM_WEBHOOK_SECRETS"}
ALLOWED_BASE_IMAGES = {"debian:12", "debian:12-slim"}


class Check:
    def __init__(self):
        self.errors = []
        self.notes = []

    def error(self, message):
        self.errors.append(message)

    def note(self, message):
        self.notes.append(message)


# --- The server's flags -----------------------------------------------------------

class Flags:
    """Flags of `sidestream --helpfull`: name -> the flag's help entry, one line."""

    def __init__(self, binary, env=None):
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        run_env.update(env or {})
        proc = subprocess.run([binary, "--helpfull"], capture_output=True, text=True,
                              env=run_env)
        self.returncode, self.stderr = proc.returncode, proc.stderr
        self.entries = {}
        name = None
        for line in proc.stdout.splitlines():
            m = re.match(r"^\s{4}--([A-Za-z0-9_]+) \((.*)$", line)
            if m:
                name = m.group(1)
                self.entries[name] = line.strip()
            elif name and line.startswith("      "):
                self.entries[name] += " " + line.strip()
            else:
                name = None

    def __contains__(self, name):
        return name in self.entries

    def default(self, name):
        m = re.search(r"; default: (.*?);( currently: |$)", self.entries.get(name, ""))
        return _unquote(m.group(1)) if m else None

    def current(self, name):
        m = re.search(r"; currently: (.*?);$", self.entries.get(name, ""))
        return _unquote(m.group(1)) if m else None


def _unquote(value):
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_duration_seconds(text):
    """Abseil duration text ("20s", "1m30s", "1h") in seconds; None if unparsable."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", text or "")
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def split_host_port(address):
    m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", address or "")
    return (m.group(1), int(m.group(2))) if m else (None, None)


def is_loopback(host):
    return host in ("localhost", "::1") or (host or "").startswith("127.")


# --- Dockerfile ---------------------------------------------------------------------

class Dockerfile:
    """Instructions grouped by stage: [(stage name, [(INSTRUCTION, argument text)])]."""

    def __init__(self, path):
        self.stages = []
        logical = ""
        with open(path, encoding="utf-8") as f:
            for raw in f:
                line = raw.rstrip("\n")
                if line.lstrip().startswith("#") and not logical:
                    continue
                if line.lstrip().startswith("#"):
                    continue  # a comment inside a continued instruction
                if line.endswith("\\"):
                    logical += line[:-1] + " "
                    continue
                logical += line
                if logical.strip():
                    self._add(logical.strip())
                logical = ""

    def _add(self, text):
        instruction, _, argument = text.partition(" ")
        instruction = instruction.upper()
        argument = argument.strip()
        if instruction == "FROM":
            m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", argument, re.I)
            self.stages.append({"image": m.group(1), "name": m.group(2) or str(len(self.stages)),
                                "instructions": []})
        if not self.stages:
            return  # ARG before FROM
        self.stages[-1]["instructions"].append((instruction, argument))

    def stage(self, name):
        return next(s for s in self.stages if s["name"] == name)


def exec_form(argument):
    """["a", "b"] or shell form, as a list of words."""
    if argument.startswith("["):
        return json.loads(argument)
    return shlex.split(argument)


def apt_packages(run_argument):
    """The packages of every `apt-get install` in a RUN line."""
    packages = []
    for command in re.split(r"&&|;", run_argument):
        words = shlex.split(command)
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1:]
            packages += [w for w in after if not w.startswith("-")]
    return packages


def dockerignore_patterns(source_dir):
    path = os.path.join(source_dir, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def excluded(relative, patterns):
    """Whether `relative` (or a parent of it) matches a .dockerignore pattern."""
    parts = relative.strip("/").split("/")
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        p = p.strip("/")
        for n in range(1, len(parts) + 1):
            prefix = "/".join(parts[:n])
            if fnmatch.fnmatchcase(prefix, p) or (
                    p.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], p[3:])):
                verdict = not negate
    return verdict


def setup_packages(source_dir):
    with open(os.path.join(source_dir, "scripts", "setup"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"PACKAGES=\((.*?)\)", text, re.S)
    return set(m.group(1).split()) if m else set()


def runtime_library_packages(binaries):
    """Debian packages of the shared libraries `binaries` load: {package: {library}}."""
    libraries = set()
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        libraries.update(re.findall(r"=>\s+(\S+)\s+\(", out))
    # The package database names either the path or its target, under /lib or
    # /usr/lib (merged /usr): ask for every spelling in one dpkg call (each
    # call reads the whole database).
    spellings = {}
    for lib in libraries:
        real = os.path.realpath(lib)
        for candidate in {lib, real, re.sub(r"^/lib/", "/usr/lib/", lib),
                          re.sub(r"^/lib/", "/usr/lib/", real),
                          re.sub(r"^/usr/lib/", "/lib/", real)}:
            spellings[candidate] = lib
    out = subprocess.run(["dpkg", "-S", *sorted(spellings)], capture_output=True,
                         text=True).stdout
    owners = {}
    for line in out.splitlines():
        package, _, path = line.partition(": ")
        if path in spellings and "," not in package:
            owners[spellings[path]] = package.split(":")[0]
    packages = {}
    for lib in libraries:
        packages.setdefault(owners.get(lib, f"<no package owns {lib}>"), set()).add(
            os.path.basename(lib))
    return packages


def configure_copy_set(check, source_dir, copies, cmake, generator):
    """Configures a tree made of exactly the build stage's COPY sources.

    Returns {target name: artifact path relative to the build dir} or None.
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        for source, destination in copies:
            target = os.path.normpath(os.path.join(src, destination))
            origin = os.path.join(source_dir, source)
            if not os.path.exists(origin):
                continue  # reported as a missing COPY source
            if os.path.isdir(origin):
                shutil.copytree(origin, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(origin, target)
        build = os.path.join(tmp, "build")
        query = os.path.join(build, ".cmake", "api", "v1", "query")
        os.makedirs(query)
        open(os.path.join(query, "codemodel-v2"), "w").close()
        proc = subprocess.run([cmake, "-S", src, "-B", build, "-G", generator,
                               "-DCMAKE_BUILD_TYPE=Release"], capture_output=True, text=True)
        if proc.returncode != 0:
            check.error("CMake cannot configure the Dockerfile's COPY set (a directory the "
                        "build needs is not copied?):\n" + proc.stderr[-3000:])
            return None
        reply = os.path.join(build, ".cmake", "api", "v1", "reply")
        index = sorted(glob.glob(os.path.join(reply, "index-*.json")))[-1]
        with open(index, encoding="utf-8") as f:
            codemodel_file = json.load(f)["reply"]["codemodel-v2"]["jsonFile"]
        with open(os.path.join(reply, codemodel_file), encoding="utf-8") as f:
            codemodel = json.load(f)
        targets = {}
        for configuration in codemodel["configurations"]:
            for t in configuration["targets"]:
                with open(os.path.join(reply, t["jsonFile"]), encoding="utf-8") as f:
                    detail = json.load(f)
                artifacts = [a["path"] for a in detail.get("artifacts", [])]
                targets[t["name"]] = artifacts[0] if artifacts else None
        return targets


def check_dockerfile(check, args, flags, docker):
    source_dir = args.source_dir
    ignore = dockerignore_patterns(source_dir)
    for stage in docker.stages:
        if stage["image"] not in ALLOWED_BASE_IMAGES and stage["image"] not in (
                s["name"] for s in docker.stages):
            check.error(f"Dockerfile: stage {stage['name']} is FROM {stage['image']}, "
                        f"not one of {sorted(ALLOWED_BASE_IMAGES)}")

    build_stage = docker.stages[0]
    runtime = docker.stages[-1]
    built = {}  # target -> path in the build stage's file system
    copies = []
    workdir = "/"
    build_dir = None
    for instruction, argument in build_stage["instructions"]:
        if instruction == "WORKDIR":
            workdir = os.path.join(workdir, argument)
        elif instruction == "COPY":
            words = [w for w in shlex.split(argument) if not w.startswith("--")]
            *sources, destination = words
            for source in sources:
                copies.append((source, destination if destination.endswith("/") or
                               len(sources) > 1 else destination))
        elif instruction == "RUN":
            m = re.search(r"cmake\s.*?-B\s*(\S+)", argument)
            if m:
                build_dir = m.group(1)
            m = re.search(r"ninja\s+-C\s+(\S+)\s+([^&;|]+)", argument)
            if m:
                for target in m.group(2).split():
                    built[target] = os.path.normpath(os.path.join(workdir, m.group(1), "bin",
                                                                  target))
            m = re.search(r"cmake\s+--build\s+(\S+).*?--target\s+([^&;|]+)", argument)
            if m:
                for target in m.group(2).split():
                    built[target] = os.path.normpath(os.path.join(workdir, m.group(1), "bin",
                                                                  target))
    if not built:
        check.error("Dockerfile: the build stage builds no target (no `ninja -C DIR TARGETS`)")
    for stage in docker.stages:
        for instruction, argument in stage["instructions"]:
            if instruction not in ("COPY", "ADD"):
                continue
            words = shlex.split(argument)
            from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")),
                              None)
            *sources, _ = [w for w in words if not w.startswith("--")]
            for source in sources:
                if from_stage is None:
                    if not glob.glob(os.path.join(source_dir, source)):
                        check.error(f"Dockerfile: COPY {source}: no such path in the repository")
                    elif excluded(source, ignore):
                        check.error(f"Dockerfile: COPY {source} is excluded by .dockerignore")
                elif os.path.normpath(source) not in built.values():
                    check.error(f"Dockerfile: COPY --from={from_stage} {source}: the build stage "
                                f"produces {sorted(built.values())}")
    for _, argument in (i for s in docker.stages for i in s["instructions"] if i[0] == "RUN"):
        for word in shlex.split(argument.replace("&&", " ").replace(";", " ")):
            first = word.split("/")[0]
            if "/" in word and first and os.path.exists(os.path.join(source_dir, first)) \
                    and not word.startswith("/") and not glob.glob(os.path.join(source_dir, word)):
                check.error(f"Dockerfile: RUN uses {word}, which is not in the repository")

    # The COPY set configures, and the targets exist where COPY --from expects them.
    targets = configure_copy_set(check, source_dir, copies, args.cmake, args.generator)
    if targets is not None:
        for target, path in built.items():
            if target not in targets:
                check.error(f"Dockerfile: builds target {target}, which CMake does not define")
                continue
            if build_dir and targets[target] != f"bin/{target}":
                check.error(f"Dockerfile: CMake puts {target} at {targets[target]} of the build "
                            f"directory, not bin/{target}")
        check.note(f"CMake configured the COPY set ({len(copies)} paths, {len(targets)} targets); "
                   f"built targets {sorted(built)} exist")

    # Packages.
    allowed = setup_packages(source_dir)
    for _, argument in (i for i in build_stage["instructions"] if i[0] == "RUN"):
        for package in apt_packages(argument):
            if package not in allowed:
                check.error(f"Dockerfile: build stage installs {package}, which is not in "
                            f"scripts/setup's package list")
    runtime_packages = set()
    for _, argument in (i for i in runtime["instructions"] if i[0] == "RUN"):
        runtime_packages.update(apt_packages(argument))
    binaries = [os.path.join(args.bin_dir, t) for t in built]
    needed = runtime_library_packages([b for b in binaries if os.path.exists(b)])
    # Sanitizer builds (scripts/sanitize) load the compiler's runtimes, which
    # the image's Release build does not.
    instrumented = {p for p, libs in needed.items()
                    if any(re.match(r"lib(a|l|t|ub|hwa)san\.so", lib) for lib in libs)}
    if instrumented:
        check.note(f"instrumented build: ignoring {sorted(instrumented)}")
        needed = {p: libs for p, libs in needed.items() if p not in instrumented}
    for package, libraries in sorted(needed.items()):
        if package not in runtime_packages and package not in BASE_IMAGE_PACKAGES:
            check.error(f"Dockerfile: the runtime stage lacks {package} "
                        f"(for {', '.join(sorted(libraries))})")
    for package in sorted(runtime_packages - set(needed)):
        check.error(f"Dockerfile: the runtime stage installs {package}, which no binary needs")
    check.note(f"runtime packages match the libraries of {len(binaries)} binaries "
               f"({len(needed)} packages)")

    # Flags and variables of the runtime stage.
    env = {}
    for instruction, argument in runtime["instructions"]:
        if instruction == "ENV":
            for word in shlex.split(argument):
                name, _, value = word.partition("=")
                env[name] = value
        if instruction in ("ENTRYPOINT", "CMD"):
            for word in exec_form(argument):
                m = re.match(r"^--([A-Za-z0-9_]+)", word)
                if m and m.group(1) not in flags:
                    check.error(f"Dockerfile: {instruction} uses --{m.group(1)}, which "
                                f"`sidestream --helpfull` does not list")
    user = next((a for i, a in runtime["instructions"] if i == "USER"), "")
    uid = user.split(":")[0]
    if not uid.isdigit() or uid == "0":
        check.error(f"Dockerfile: USER {user!r} must be a numeric non-root uid "
                    f"(Kubernetes' runAsNonRoot can only verify a number)")
    volumes = [v for i, a in runtime["instructions"] if i == "VOLUME" for v in exec_form(a)]
    exposed = {int(p.split("/")[0]) for i, a in runtime["instructions"] if i == "EXPOSE"
               for p in a.split()}
    return {"env": env, "uid": uid, "volumes": volumes, "exposed": exposed}


# --- Kubernetes ---------------------------------------------------------------------

def check_variables(check, where, env, flags, binary):
    """SIDESTREAM_* variables: real flags, values accepted, actually read."""
    for name in env:
        if name in ENV_ONLY_VARIABLES or not name.startswith("SIDESTREAM_"):
            continue
        flag = name[len("SIDESTREAM_"):].lower()
        if flag not in flags:
            check.error(f"{where}: {name} sets --{flag}, which `sidestream --helpfull` does not "
                        f"list")
    known = {k: v for k, v in env.items()
             if k.startswith("SIDESTREAM_") and k[len("SIDESTREAM_"):].lower() in flags}
    with_env = Flags(binary, known)
    if "invalid SIDESTREAM_" in with_env.stderr or not with_env.entries:
        check.error(f"{where}: the server refuses these settings: {with_env.stderr.strip()}")
        return
    for name, value in known.items():
        flag = name[len("SIDESTREAM_"):].lower()
        if with_env.current(flag) is None and flags.default(flag) != value:
            check.error(f"{where}: {name}={value} has no effect: the server does not read "
                        f"{name} (or {value!r} is the default {flags.default(flag)!r} spelt "
                        f"differently)")


def find(items, name):
    return next((i for i in items or [] if i.get("name") == name), None)


def port_number(container, port):
    """A probe's or Service's port (a number or a port name) as a number."""
    if str(port).isdigit():
        return int(port)
    p = find(container.get("ports"), port)
    return int(p["containerPort"]) if p else None


def check_kubernetes(check, args, flags, image):
    k8s_dir = os.path.join(args.source_dir, "deploy", "kubernetes")
    docs = []
    for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            for doc in minimal_yaml.load_all(text, os.path.relpath(path, args.source_dir)):
                docs.append((os.path.basename(path), doc))
        except minimal_yaml.YamlError as e:
            check.error(f"kubernetes: {e}")
        if "whsec_" in re.sub(r"#.*", "", text):
            check.error(f"kubernetes/{os.path.basename(path)}: contains a whsec_ secret")
    by_kind = {}
    for file, doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append(doc)
    for file, doc in docs:
        if doc.get("kind") == "Kustomization":
            for resource in doc.get("resources", []):
                if not os.path.exists(os.path.join(k8s_dir, resource)):
                    check.error(f"kubernetes/{file}: resource {resource} does not exist")

    deployments = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    if len(deployments) != 1:
        check.error(f"kubernetes: expected one Deployment or StatefulSet, found {len(deployments)}")
        return
    workload = deployments[0]
    pod = workload["spec"]["template"]
    spec = pod["spec"]
    sidestream = find(spec.get("containers"), "sidestream")
    if sidestream is None:
        check.error("kubernetes: no container named sidestream")
        return
    where = "kubernetes: container sidestream"

    # Flags and variables.
    for word in (sidestream.get("command") or []) + (sidestream.get("args") or []):
        m = re.match(r"^--([A-Za-z0-9_]+)", word)
        if m and m.group(1) not in flags:
            check.error(f"{where}: uses --{m.group(1)}, which `sidestream --helpfull` does not "
                        f"list")
    env = dict(image["env"])
    for var in sidestream.get("env") or []:
        if "value" not in var:
            check.error(f"{where}: {var.get('name')} must be a plain value (secrets are files)")
            continue
        env[var["name"]] = var["value"]
    for name in env:
        if name.startswith("SIDESTREAM_") and any(
                s in name for s in ("SECRET", "TOKEN")) and not name.endswith("_FILE"):
            check.error(f"{where}: {name}: secrets and tokens must come from files")
    check_variables(check, where, env, flags, args.binary)
    for word in (sidestream.get("args") or []):
        m = re.match(r"^--([A-Za-z0-9_]+)=(.*)$", word)
        if m:
            env[f"SIDESTREAM_{m.group(1).upper()}"] = m.group(2)  # the command line wins

    def setting(flag):
        return env.get(f"SIDESTREAM_{flag.upper()}", flags.default(flag))

    # Addresses, ports and probes.
    listen = {name: split_host_port(setting(f"{name}_listen"))
              for name in ("http", "grpc", "admin")}
    ports = {p.get("name"): int(p["containerPort"]) for p in sidestream.get("ports") or []}
    expected_names = {"webhook": "http", "admin": "admin", "grpc": "grpc"}
    for port_name, number in ports.items():
        listener = expected_names.get(port_name)
        if listener is None:
            check.error(f"{where}: port {port_name} is none of {sorted(expected_names)}")
        elif listen[listener][1] != number:
            check.error(f"{where}: port {port_name} is {number} but --{listener}_listen is "
                        f"{setting(listener + '_listen')}")
        elif is_loopback(listen[listener][0]):
            check.error(f"{where}: port {port_name} is declared but --{listener}_listen is on "
                        f"loopback")
        if number not in image["exposed"]:
            check.error(f"{where}: port {number} is not EXPOSEd by the Dockerfile")
    for required in ("webhook", "admin"):
        if required not in ports:
            check.error(f"{where}: no container port named {required}")
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                             ("startupProbe", "/healthz")):
        probe = sidestream.get(probe_name)
        if probe is None:
            if probe_name != "startupProbe":
                check.error(f"{where}: no {probe_name}")
            continue
        get = probe.get("httpGet") or {}
        if get.get("path") != path:
            check.error(f"{where}: {probe_name} path is {get.get('path')}, expected {path}")
        if port_number(sidestream, get.get("port")) != listen["admin"][1]:
            check.error(f"{where}: {probe_name} port {get.get('port')} is not the admin port "
                        f"({setting('admin_listen')})")
    if listen["admin"][0] is None or is_loopback(listen["admin"][0]):
        check.error(f"{where}: --admin_listen {setting('admin_listen')} is not reachable by the "
                    f"kubelet's probes")
    # The server's secure default: gRPC and admin off loopback only with TLS
    # or access tokens (or an explicit --allow_insecure_remote).
    for name in ("grpc", "admin"):
        if listen[name][0] is not None and not is_loopback(listen[name][0]) and not (
                setting("grpc_tokens_file") or setting(f"{name}_tls_cert_file")
                or setting("allow_insecure_remote") == "true"):
            check.error(f"{where}: --{name}_listen is not loopback with neither TLS nor "
                        f"--grpc_tokens_file: the server would refuse to start")
    annotations = pod.get("metadata", {}).get("annotations") or {}
    if annotations.get("prometheus.io/scrape") == "true":
        if annotations.get("prometheus.io/port") != str(listen["admin"][1]):
            check.error(f"kubernetes: prometheus.io/port {annotations.get('prometheus.io/port')} "
                        f"is not the admin port {listen['admin'][1]}")
        if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
            check.error("kubernetes: prometheus.io/path is not /metrics")

    # Shutdown.
    grace = parse_duration_seconds(setting("shutdown_grace"))
    termination = int(spec.get("terminationGracePeriodSeconds", "30"))
    if grace is None:
        check.error(f"{where}: --shutdown_grace {setting('shutdown_grace')!r} is not a duration "
                    f"(or the flag does not exist)")
    elif termination <= grace:
        check.error(f"kubernetes: terminationGracePeriodSeconds {termination} is not above "
                    f"--shutdown_grace {setting('shutdown_grace')}")

    # Security context.
    pod_security = spec.get("securityContext") or {}
    security = sidestream.get("securityContext") or {}
    merged = dict(pod_security, **security)
    if merged.get("runAsNonRoot") != "true":
        check.error(f"{where}: runAsNonRoot is not true")
    if merged.get("runAsUser") not in (None, image["uid"]):
        check.error(f"{where}: runAsUser {merged.get('runAsUser')} is not the image's uid "
                    f"{image['uid']}")
    if security.get("readOnlyRootFilesystem") != "true":
        check.error(f"{where}: readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") != "false":
        check.error(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        check.error(f"{where}: capabilities do not drop ALL")
    if not (sidestream.get("resources") or {}).get("limits", {}).get("memory"):
        check.error(f"{where}: no memory limit")

    # Volumes: data on a PVC, /tmp writable, secrets from Secret volumes.
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts = sidestream.get("volumeMounts") or []

    def mount_of(path):
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        return best

    data_dir = setting("data_dir")
    data_mount = mount_of(data_dir)
    claims = {c["metadata"]["name"] for c in by_kind.get("PersistentVolumeClaim", [])}
    templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    if data_mount is None:
        check.error(f"{where}: --data_dir {data_dir} is not on a mounted volume")
    else:
        volume = volumes.get(data_mount["name"], {})
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if data_mount["name"] not in templates and claim not in claims:
            check.error(f"{where}: --data_dir {data_dir} is not on a PersistentVolumeClaim "
                        f"defined in deploy/kubernetes")
        if data_dir not in image["volumes"]:
            check.note(f"--data_dir {data_dir} differs from the image's VOLUME {image['volumes']}")
    if security.get("readOnlyRootFilesystem") == "true" and mount_of("/tmp") is None:
        check.error(f"{where}: the root is read-only and /tmp is not mounted")
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    for name, value in env.items():
        if not (name.startswith("SIDESTREAM_") and name.endswith("_FILE")) or not value:
            continue
        mount = mount_of(value)
        volume = volumes.get(mount["name"], {}) if mount else {}
        secret_name = (volume.get("secret") or {}).get("secretName")
        if secret_name is None:
            check.error(f"{where}: {name}={value} is not in a mounted Secret volume")
            continue
        if mount.get("readOnly") != "true":
            check.error(f"{where}: the Secret volume at {mount['mountPath']} is not readOnly")
        if "subPath" in mount:
            check.error(f"{where}: the Secret at {mount['mountPath']} uses subPath: it would "
                        f"never see a rotated secret")
        key = os.path.relpath(value, mount["mountPath"])
        items = (volume.get("secret") or {}).get("items")
        if items:
            key = next((i["key"] for i in items if i["path"] == key), None)
        secret = secrets.get(secret_name)
        if secret is None:
            check.error(f"{where}: Secret {secret_name} is not described in deploy/kubernetes")
        elif key not in (secret.get("stringData") or {}) and key not in (secret.get("data") or {}):
            check.error(f"{where}: {name}={value} needs key {key!r} in Secret {secret_name}")

    # Service and Ingress.
    labels = pod.get("metadata", {}).get("labels") or {}
    services = {}
    for service in by_kind.get("Service", []):
        selector = service["spec"].get("selector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            check.error(f"kubernetes: Service {service['metadata']['name']} does not select the "
                        f"pod's labels")
        services[service["metadata"]["name"]] = service
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if port_number(sidestream, target) is None:
                check.error(f"kubernetes: Service {service['metadata']['name']} targets port "
                            f"{target}, which the sidestream container does not declare")
    webhook_path = setting("webhook_path")
    for ingress in by_kind.get("Ingress", []):
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                if service is None:
                    check.error(f"kubernetes: Ingress routes to Service {backend['name']}, "
                                f"which deploy/kubernetes does not define")
                    continue
                wanted = backend["port"].get("name") or backend["port"].get("number")
                port = next((p for p in service["spec"]["ports"]
                             if wanted in (p.get("name"), p.get("port"))), None)
                if port is None:
                    check.error(f"kubernetes: Ingress uses port {wanted} of Service "
                                f"{backend['name']}, which has no such port")
                    continue
                target = port_number(sidestream, port.get("targetPort", port.get("port")))
                if path.get("path") == webhook_path and target != listen["http"][1]:
                    check.error(f"kubernetes: Ingress routes {webhook_path} to port {target}, "
                                f"not the webhook port {listen['http'][1]}")
                if path.get("path") != webhook_path:
                    check.error(f"kubernetes: Ingress path {path.get('path')} is not "
                                f"--webhook_path {webhook_path}")
    check.note(f"kubernetes: {len(docs)} objects; sidestream container with "
               f"{sum(1 for k in env if k.startswith('SIDESTREAM_'))} SIDESTREAM_* settings")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source_dir", required=True)
    p.add_argument("--bin_dir", required=True)
    p.add_argument("--cmake", default="cmake")
    p.add_argument("--generator", default="Ninja")
    args = p.parse_args(argv)
    args.binary = os.path.join(args.bin_dir, "sidestream")

    check = Check()
    flags = Flags(args.binary)
    if not flags.entries:
        print(f"cannot read the flags of {args.binary} --helpfull", file=sys.stderr)
        return 1
    docker = Dockerfile(os.path.join(args.source_dir, "deploy", "Dockerfile"))
    image = check_dockerfile(check, args, flags, docker)
    check_variables(check, "Dockerfile ENV", image["env"], flags, args.binary)
    check_kubernetes(check, args, flags, image)

    for note in check.notes:
        print(f"ok: {note}")
    for error in check.errors:
        print(f"FAIL: {error}")
    print(f"deploy_files_check: {len(check.errors)} problem(s)")
    return 1 if check.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
