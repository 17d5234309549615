"""Render a full-lab run (metrics.json from `python -m catdog.lab`) as the Markdown section
that benchmarks/RESULTS.md carries beside the student report's numbers:

    python -m catdog.lab --output lab_output && \
    python benchmarks/lab_section.py lab_output/metrics.json [more runs ...] >> benchmarks/RESULTS.md
"""
import json
import sys


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    first = runs[0]
    print("\n## The full lab (10 + 10 epochs, `python -m catdog.lab`)\n")
    print(f"Data: {first['train_images']} training images, validation 808 / test 192 images "
          f"(`skip(6)` / `take(6)`), 160×160, MobileNetV2 alpha 1.0 with the ImageNet "
          f"`1.0_224` no-top weights from ../shared (the report used the `1.0_160` file, not "
          f"at hand here), {first['threads']} threads.\n")
    print("| seed | precision | val_accuracy after transfer (10 ep.) | val_loss | val_accuracy "
          "after fine-tuning (+11 ep.) | best fine-tuning epoch | test accuracy | wall time, s | "
          "peak RSS, MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in runs:
        t, f = m["transfer"], m["fine_tuned"]
        print(f"| {m['seed']} | {m.get('precision', 'fp32')} | {t['val_accuracy']:.4f} | {t['val_loss']:.4f} | "
              f"{f['val_accuracy']:.4f} | {max(m['history_fine']['val_accuracy']):.4f} | "
              f"{m['test']['accuracy']:.4f} | {m['seconds']['total']:.0f} | "
              f"{m['peak_rss_mb']:.0f} |")
    print("| student report (TF) | fp32 | 0.9703 | 0.1066 | 0.98 | | | | |")
    print("\nTargets (issue 4): ≥ 0.96 after transfer, ≥ 0.975 after fine-tuning, test ≥ 0.97.")
    fp32 = [m for m in runs if m.get("precision", "fp32") == "fp32"]
    if len(fp32) > 1:  # how the targets sit in the seed-to-seed spread
        rows = [(m["transfer"]["val_accuracy"], m["fine_tuned"]["val_accuracy"],
                 m["test"]["accuracy"]) for m in fp32]
        limits = (0.96, 0.975, 0.97)
        mean = [sum(r[i] for r in rows) / len(rows) for i in range(3)]
        meets = [sum(r[i] >= limits[i] for r in rows) for i in range(3)]
        every = sum(all(r[i] >= limits[i] for i in range(3)) for r in rows)
        print(f"\nfp32 over {len(rows)} seeds: mean {mean[0]:.4f} / {mean[1]:.4f} / "
              f"{mean[2]:.4f}; each target met by {meets[0]} / {meets[1]} / {meets[2]} of "
              f"{len(rows)} seeds, all three by {every}.")


if __name__ == "__main__":
    main(sys.argv[1:])
