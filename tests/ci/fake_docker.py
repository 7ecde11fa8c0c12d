"""
A stand-in for the docker CLI in package.sh tests (no Docker engine runs here).

``login`` checks a password arrives on stdin; ``build`` records the tags and labels; ``push``
puts an image manifest into ECR through boto3 (moto), so the script's ECR checks see a real
image. Every call is appended to $FAKE_DOCKER_LOG as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    log = Path(os.environ["FAKE_DOCKER_LOG"])
    state_path = log.with_suffix(".state.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {"built": {}}
    record: dict[str, object] = {"argv": argv}
    command = argv[0] if argv else ""
    if command == "login":
        password = sys.stdin.read().strip()
        record["password_given"] = bool(password)
        if not password or "--password-stdin" not in argv:
            print("fake docker: login needs --password-stdin and a password", file=sys.stderr)
            return 1
    elif command == "build":
        args, tags, labels = argv[1:], [], []
        for flag, value in zip(args, args[1:], strict=False):
            if flag == "--tag":
                tags.append(value)
            elif flag == "--label":
                labels.append(value)
        context = Path(args[-1])
        if not (context / "Dockerfile").is_file() and "--file" not in args:
            return 1
        digest = hashlib.sha256(
            json.dumps([sorted(labels), sorted(p.name for p in context.iterdir())]).encode()
        )
        for tag in tags:
            state["built"][tag] = {"labels": labels, "config": digest.hexdigest()}
    elif command == "push":
        reference = argv[1]
        built = state["built"].get(reference)
        if built is None:
            print(f"fake docker: {reference} was not built", file=sys.stderr)
            return 1
        import boto3

        registry_repo, tag = reference.rsplit(":", 1)
        repository = registry_repo.split("/", 1)[1]
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": f"sha256:{built['config']}",
            },
            "layers": [],
        }
        try:
            boto3.client("ecr").put_image(
                repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
            )
        except Exception as exc:  # what docker push prints when ECR refuses
            print(f"fake docker: push refused: {exc}", file=sys.stderr)
            return 1
    else:
        print(f"fake docker: unsupported command {argv}", file=sys.stderr)
        return 1
    state_path.write_text(json.dumps(state))
    with log.open("a") as out:
        out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
