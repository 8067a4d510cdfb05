"""relier-lab: the harness plugged into ``rl`` (demo, bench, chaos, cluster) and process helpers."""
