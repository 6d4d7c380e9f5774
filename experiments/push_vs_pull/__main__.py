"""``python -m experiments.push_vs_pull --out DIR [...]``."""

from experiments.push_vs_pull.cli import push_vs_pull

if __name__ == "__main__":
    push_vs_pull()
