"""Certificates and keys for the local control plane, made with the openssl CLI.

Why the CLI: openssl is on every machine the tests run on, while the
`cryptography` package is not a dependency of kubetune.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "3650"


def _openssl(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {proc.stderr.strip()}")


def _key(path: Path) -> None:
    _openssl("genrsa", "-out", path, "2048", cwd=path.parent)
    path.chmod(0o600)


def make_ca(directory: Path, name: str = "kubetune-local-ca") -> tuple[Path, Path]:
    """Create a self-signed CA; returns (cert, key)."""
    cert, key = directory / "ca.crt", directory / "ca.key"
    _key(key)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-sha256", "-days", DAYS,
        "-subj", f"/CN={name}", "-out", cert, cwd=directory,
    )
    return cert, key


def make_signed(
    directory: Path,
    stem: str,
    ca: tuple[Path, Path],
    common_name: str,
    *,
    organization: str | None = None,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
    client: bool = False,
) -> tuple[Path, Path]:
    """Create a key and a CA-signed serving (or client) certificate; returns (cert, key)."""
    cert, key, csr, ext = (directory / f"{stem}{s}" for s in (".crt", ".key", ".csr", ".ext"))
    _key(key)
    subj = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
    _openssl("req", "-new", "-key", key, "-subj", subj, "-out", csr, cwd=directory)
    usage = "clientAuth" if client else "serverAuth"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-sha256", "-days", DAYS, "-extfile", ext, "-out", cert, cwd=directory,
    )
    csr.unlink()
    ext.unlink()
    return cert, key


def make_keypair(directory: Path, stem: str) -> tuple[Path, Path]:
    """RSA key pair for signing service-account tokens; returns (public, private)."""
    private, public = directory / f"{stem}.key", directory / f"{stem}.pub"
    _key(private)
    _openssl("rsa", "-in", private, "-pubout", "-out", public, cwd=directory)
    return public, private


@dataclass(frozen=True)
class ClusterPKI:
    """Every file the components need, all under one directory."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path
    node_cert: Path
    node_key: Path
    sa_public: Path
    sa_private: Path

    @classmethod
    def create(cls, directory: Path, service_ip: str) -> ClusterPKI:
        directory.mkdir(parents=True, exist_ok=True)
        ca = make_ca(directory)
        api = make_signed(
            directory, "apiserver", ca, "kube-apiserver",
            ips=("127.0.0.1", service_ip),
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        )
        # The apiserver authenticates to the node agent's log server with this.
        kc = make_signed(
            directory, "apiserver-kubelet-client", ca, "kube-apiserver-kubelet-client",
            organization="system:masters", client=True,
        )
        node = make_signed(directory, "node-agent", ca, "kubetune-node-agent",
                           ips=("127.0.0.1",), dns=("localhost",))
        sa = make_keypair(directory, "sa")
        return cls(ca[0], ca[1], api[0], api[1], kc[0], kc[1], node[0], node[1], sa[0], sa[1])
