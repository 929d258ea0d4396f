"""Labelling speed against the batched ceiling, start-up time and peak memory (run by hand).

    python bench/infer.py                          # 500 images, 224 px, ResNet-101
    python bench/infer.py --images 500 --more 5000  # also each runtime's memory at 5,000 images
    python bench/infer.py --workers 1,2 --paths onnx,local:1,local:2  # Dask: 1 and 2 workers
    python bench/infer.py --engines onnxruntime,openvino,openvino-bf16 --batch_size 64
                        # each engine on weights/model.onnx and its .int8.onnx (--weights: another)

ceiling-tf / ceiling-onnx / ceiling-int8: a batched forward pass of the scoring model (P(PG) and
the OOD features, the work GAinfer asks of each runtime) over in-memory tensors (no decoding, no
files). keras / onnx / int8.onnx: GAinfer.main() end to end on a folder of PNGs (the .onnx files
on ONNX Runtime, as the ceilings; --engines compares the engines):
model loading, decoding, batching, the OOD score, the table and the CSV. single: one
model.predict() call per image, as the original labelled.
local:N (with --workers): GAinfer.main(--cluster) with model.onnx on a Dask LocalCluster of N
worker processes, end to end including the cluster's start and each worker loading the model;
warm: a second run on the same workers (models loaded); peak memory is the driver's.
start-up: from process start to the first image's label. Each path runs in its own process; peak
resident memory is that process's, from the operating system.
--engines: each engine (gacrystal.onnx_io.ENGINES) on the model's .onnx file and its int8 copy,
each in its own process: P(PG) and the ood_score of images in memory (the engine's work, no
decoding) and Classifier.label on the split's val and test files (decoding included), and how far
each agrees with ONNX Runtime on the fp32 file: the split's val and test crops, the tests'
generated foreign images and the real crops in their eight orientations (those near the OOD
check's threshold).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, peak_rss_mb, run_child


def image_folder(dest: Path, n: int) -> Path:
    """n synthetic images (half CEX, half PG, at the real sizes) in one flat folder."""
    from gacrystal.synthetic.crops import generate_dataset
    if (dest / "done").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    written = generate_dataset(dest / "source", n - n // 2, n // 2, seed=1, progress=False)
    (dest / "images").mkdir()
    for files in written.values():
        for path in files:
            shutil.copyfile(path, dest / "images" / path.name)
    (dest / "done").write_text("")
    return dest


def build_models(work: Path, image_size: int, backbone: str):
    """A scratch model saved as GAmain writes it: .keras, the scoring .onnx with its model card,
    and ood.npz; then its int8 copy (GAquantize) with its own ood.int8.npz. The statistics are
    fitted on 60 of the bench's images: they only need to exist, so each path does the same work."""
    import numpy as np
    from gacrystal import ood
    from gacrystal.files import MODEL_INT8_ONNX, MODEL_ONNX, OOD_INT8_NPZ, OOD_NPZ
    from gacrystal.model import build_classifier, model_card, scoring_model
    from gacrystal.onnx_io import export_onnx
    from gacrystal.quantize import int8_path, onnx_features, quantize
    if (work / OOD_INT8_NPZ).exists():
        return
    model = build_classifier(backbone, None, image_size)
    model(np.zeros((1, image_size, image_size, 3), np.float32))
    model.save(work / "model.keras")
    scorer, sizes = scoring_model(model)
    export_onnx(scorer, work / "model.onnx", model_card(backbone, image_size, "bilinear"))
    files = sorted(next(work.glob("n*/images")).iterdir())[:60]
    quantize(work / "model.onnx", files[:32], int8_path(work / "model.onnx"), image_size,
             "bilinear")
    labels = np.arange(60) % 2
    for model_file, name in ((MODEL_ONNX, OOD_NPZ), (MODEL_INT8_ONNX, OOD_INT8_NPZ)):
        found = onnx_features(work / model_file, image_size, "bilinear")(files, False)
        ood.save(ood.fit(found[:40], labels[:40], found[40:], sizes), work / name)


def on_local_workers(work: Path, folder: Path, n: int, workers: int, batch_size: int,
                     shard_batches: int) -> dict:
    """GAinfer.main(--cluster) with model.onnx on a LocalCluster of `workers` processes: cold (the
    cluster's start, each worker importing and loading the model) and warm (a second run)."""
    import GAinfer
    from gacrystal.cluster import connect
    seconds = []
    start = time.perf_counter()
    with connect(f"local:{workers}") as client:
        for _ in range(2):
            GAinfer.main(["--weights", str(work / "model.onnx"), "--images", str(folder),
                          "--out", str(work / f"labels-{workers}-workers-{n}.csv"), "--overwrite",
                          "--batch_size", str(batch_size), "--shard_batches", str(shard_batches),
                          "--cluster", client.scheduler.address, "--engine", "onnxruntime"])
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
    return {"images_per_s": n / seconds[0], "warm_images_per_s": n / seconds[1],
            "seconds": seconds[0], "peak_rss_mb": peak_rss_mb()}


def engine_images(weights: Path, size: int, resize: str) -> tuple[list[str], "np.ndarray"]:
    """The split's val and test files (the split weights' config.json names), and every image the
    engines are compared on, in memory: those files, the tests' foreign images (20 of each kind)
    and the real crops beside the checkout (../shared/reference/real) in eight orientations."""
    import numpy as np
    from gacrystal.classifier import training_data_of
    from gacrystal.dataset.split_folder import list_split
    from gacrystal.images import dihedral, read_rgb
    sys.path.insert(0, str(ROOT / "tests"))
    from foreign import foreign_images
    split = Path(training_data_of(weights))
    files = [str(f) for part in ("val", "test") for f in list_split(split / part)[0]]
    images = [read_rgb(f, size, resize) for f in files]
    images += [read_rgb(image, size, resize) for kind in foreign_images(20, 128, seed=5).values()
               for image in kind]
    real = ROOT.parent / "shared" / "reference" / "real"
    for path in sorted(real.glob("*.png")) if real.is_dir() else []:
        crop = read_rgb(path, size, resize)
        images += [dihedral(crop, k) for k in range(8)]
    return files, np.stack(images).astype(np.float32)


def on_engine(work: Path, weights: Path, engine: str, batch_size: int) -> dict:
    """One engine on one .onnx file: its speed on the images in memory (the median of 3 passes)
    and on the split's files end to end; its P(PG) and ood_scores saved for the comparison."""
    import numpy as np
    from gacrystal import load_classifier
    started = time.perf_counter()
    classifier = load_classifier(weights, engine=engine)
    load_s = time.perf_counter() - started
    files, pixels = engine_images(weights, classifier.image_size, classifier.resize)

    def one_pass():
        parts = [classifier.predict_and_score(pixels[i:i + batch_size])
                 for i in range(0, len(pixels), batch_size)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([s for _, s in parts])
    one_pass()  # warm-up: every batch shape once
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        p_pg, scores = one_pass()
        seconds.append(time.perf_counter() - start)
    classifier.label(files[:batch_size], batch_size)
    start = time.perf_counter()
    classifier.label(files, batch_size)
    files_s = time.perf_counter() - start
    np.savez(work / f"{weights.name}-{engine}.npz", p_pg=p_pg, scores=scores)
    return {"engine": classifier.engine, "images": len(pixels), "files": len(files),
            "images_per_s": len(pixels) / float(np.median(seconds)),
            "files_per_s": len(files) / files_s, "load_s": load_s, "peak_rss_mb": peak_rss_mb()}


def compare_engines(args):
    """--engines: each engine on the .onnx file and its int8 copy, against ONNX Runtime on the
    fp32 file (the first row). With --rounds N the plan runs N times in turn, and each speed is
    the best of its N (a shared machine's other work only ever slows a round)."""
    import numpy as np
    from gacrystal.images import predicted_labels
    from gacrystal.quantize import int8_path
    fp32 = Path(args.weights).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="ga-bench-engines-"))
    engines = args.engines.split(",")
    plan = [(fp32, "onnxruntime")] + [(fp32, e) for e in engines if e != "onnxruntime"]
    if int8_path(fp32).is_file():  # an int8 file runs as int8 on every engine: bf16 adds nothing
        plan += [(int8_path(fp32), e) for e in engines if e != "openvino-bf16"]
    print(f"machine: {machine()}")
    print(f"{fp32}, batch {args.batch_size}, best of {args.rounds} rounds")
    rounds = {step: [] for step in plan}
    for _ in range(args.rounds):
        for weights, engine in plan:
            rounds[(weights, engine)].append(run_child(Path(__file__), [
                "engine", "--work", str(work), "--weights", str(weights), "--engine", engine,
                "--batch_size", str(args.batch_size)]))
    reference = np.load(work / f"{fp32.name}-onnxruntime.npz")
    print(f"  {rounds[plan[0]][0]['images']} images in memory ({rounds[plan[0]][0]['files']} of "
          "them the split's val and test files)")
    for (weights, engine), results in rounds.items():
        found = np.load(work / f"{weights.name}-{engine}.npz")
        unknown, unknown_ref = found["scores"] > 1, reference["scores"] > 1
        labels = np.mean(predicted_labels(found["p_pg"]) == predicted_labels(reference["p_pg"]))
        r = results[0]
        speeds = [x["images_per_s"] for x in results]
        print(f"  {weights.name:<16} {r['engine']:<17} {max(speeds):6.1f} images/s in memory "
              f"({', '.join(f'{v:.1f}' for v in speeds)}), "
              f"{max(x['files_per_s'] for x in results):6.1f} from files;  vs onnxruntime fp32: "
              f"labels {100 * labels:6.2f}%, UNKNOWN {100 * np.mean(unknown == unknown_ref):6.2f}% "
              f"(rejects {100 * unknown.mean():4.1f}%), largest P(PG) difference "
              f"{np.abs(found['p_pg'] - reference['p_pg']).max():.5f};  load "
              f"{min(x['load_s'] for x in results):.1f} s, peak RSS "
              f"{max(x['peak_rss_mb'] for x in results) / 1024:.2f} GB")


def child(args) -> dict:
    import numpy as np
    if args.child == "engine":
        return on_engine(Path(args.work), Path(args.weights), args.engine, args.batch_size)
    work, started = Path(args.work), args.started
    folder = work / f"n{args.n}" / "images"
    files = sorted(str(p) for p in folder.iterdir())
    size = args.image_size
    if args.child in ("keras", "onnx", "int8.onnx"):
        import GAinfer
        from gacrystal import load_classifier
        classifier = load_classifier(work / f"model.{args.child}", engine="onnxruntime")
        classifier.label(files[:1])
        startup = time.time() - started
        start = time.perf_counter()
        GAinfer.main(["--weights", str(work / f"model.{args.child}"), "--images", str(folder),
                      "--out", str(work / f"labels-{args.child}-{args.n}.csv"), "--overwrite",
                      "--batch_size", str(args.batch_size), "--engine", "onnxruntime"])
        seconds = time.perf_counter() - start
        return {"images_per_s": len(files) / seconds, "seconds": seconds, "startup_s": startup,
                "peak_rss_mb": peak_rss_mb()}
    if args.child.startswith("local:"):
        return on_local_workers(work, folder, len(files), int(args.child[6:]), args.batch_size,
                                args.shard_batches)
    x = np.random.default_rng(0).uniform(0, 255, (len(files), size, size, 3)).astype(np.float32)
    if args.child in ("ceiling-onnx", "ceiling-int8"):
        from gacrystal.onnx_io import open_session
        name = "model.onnx" if args.child == "ceiling-onnx" else "model.int8.onnx"
        session = open_session(work / name)
        name = session.get_inputs()[0].name
        run = lambda batch: session.run(None, {name: batch})  # noqa: E731
    else:  # the scoring model, as GAinfer runs it: P(PG) and the OOD features in one pass
        import keras
        from gacrystal.model import scoring_model
        scorer, _ = scoring_model(keras.models.load_model(work / "model.keras", compile=False))
        run = scorer.predict_on_batch
    if args.child == "single":
        import keras
        from gacrystal.images import read_rgb
        model = keras.models.load_model(work / "model.keras", compile=False)
        model.predict(x[:1], verbose=0)  # warm-up
        start = time.perf_counter()
        for path in files[:args.single]:
            model.predict(read_rgb(path, size)[None].astype(np.float32), verbose=0)
        return {"images_per_s": args.single / (time.perf_counter() - start),
                "peak_rss_mb": peak_rss_mb()}
    run(x[:args.batch_size])  # warm-up, for the full batches' shape and the last one's
    run(x[:len(x) % args.batch_size or args.batch_size])
    start = time.perf_counter()
    for i in range(0, len(x), args.batch_size):
        run(x[i:i + args.batch_size])
    seconds = time.perf_counter() - start
    return {"images_per_s": len(x) / seconds, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="images in the folder")
    parser.add_argument("--more", type=int, default=0,
                        help="also label this many with each runtime (memory must not grow)")
    parser.add_argument("--single", type=int, default=60, help="images for the one-by-one baseline")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--backbone", default="ResNet101")
    parser.add_argument("--work", default="", help="folder for images and models (default: temp)")
    parser.add_argument("--paths", default="", help="run only these paths (comma-separated)")
    parser.add_argument("--workers", default="",
                        help="also label on Dask with this many local workers (comma-separated)")
    parser.add_argument("--shard_batches", type=int, default=16, help="batches per Dask shard")
    parser.add_argument("--engines", default="",
                        help="compare these engines (comma-separated) on --weights instead")
    parser.add_argument("--weights", default="weights/model.onnx",
                        help="with --engines: the .onnx model (its .int8.onnx too, if there)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --engines: run the plan this many times; the best speed counts")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.engines:
        compare_engines(args)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="ga-bench-infer-"))
    for n in filter(None, (args.images, args.more)):
        image_folder(work / f"n{n}", n)
    build_models(work, args.image_size, args.backbone)
    print(f"machine: {machine()}")
    print(f"{args.backbone}, {args.image_size} px, batch {args.batch_size}, {args.images} PNG images "
          "(151-230 px, decoded and resized)")
    common = ["--work", str(work), "--image_size", str(args.image_size),
              "--batch_size", str(args.batch_size), "--single", str(args.single),
              "--shard_batches", str(args.shard_batches)]
    plan = [("ceiling-tf", args.images), ("keras", args.images), ("ceiling-onnx", args.images),
            ("onnx", args.images), ("ceiling-int8", args.images), ("int8.onnx", args.images),
            ("single", args.images)]
    if args.more:
        plan += [("keras", args.more), ("onnx", args.more)]
    plan += [(f"local:{n}", args.images) for n in filter(None, args.workers.split(","))]
    if args.paths:
        plan = [(mode, n) for mode, n in plan if mode in args.paths.split(",")]
    results = {}
    for mode, n in plan:
        r = run_child(Path(__file__), [mode, "--n", str(n), "--started", str(time.time()), *common])
        results[(mode, n)] = r
        extra = f"   start-up {r['startup_s']:4.1f} s" if "startup_s" in r else ""
        extra += f"   warm {r['warm_images_per_s']:6.2f} images/s" if "warm_images_per_s" in r else ""
        print(f"  {mode:<13} {n:>5} images  {r['images_per_s']:6.2f} images/s   "
              f"peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB{extra}")
    for runtime, ceiling in (("keras", "ceiling-tf"), ("onnx", "ceiling-onnx"),
                             ("int8.onnx", "ceiling-int8")):
        if (runtime, args.images) not in results or (ceiling, args.images) not in results:
            continue
        share = results[(runtime, args.images)]["images_per_s"] / results[(ceiling, args.images)]["images_per_s"]
        print(f"  {runtime}: end to end at {100 * share:.0f}% of its batched ceiling")
    for runtime in ("keras", "onnx") if args.more and not args.paths else ():
        small, large = (results[(runtime, n)]["peak_rss_mb"] / 1024 for n in (args.images, args.more))
        print(f"  {runtime}: peak memory {small:.2f} GB on {args.images} images, "
              f"{large:.2f} GB on {args.more}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
