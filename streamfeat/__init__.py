"""The `streamfeat` CLI and the local-stack supervisor (sits on top of every wing)."""
