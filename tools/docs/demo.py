"""The README's paragraph on `make demo`, written from bench/demo_record.json (a recorded demo run), never typed.

nbs/index.ipynb prints it in a cell whose code the docs hide (`#| echo: false`); tests/test_demo.py runs a fresh demo
and fails when its figures drift from the record. `python bench/record_demo.py` records a new run.
"""
import json
from pathlib import Path

RECORD = Path(__file__).resolve().parents[2]/'bench'/'demo_record.json'

def demo_record(path=RECORD) -> dict: return json.loads(Path(path).read_text(encoding='utf-8'))

def demo_paragraph(rec:dict|None=None) -> str:
    "The demo paragraph of the home page, every figure from the record."
    rec = rec or demo_record()
    f = rec['figures']
    return (f"Recorded run of `make demo` ({rec['date']}, {rec['machine']}, CPU only; `bench/demo_record.json`, made by "
            f"`bench/record_demo.py`): {f['epochs']} epochs of a {f['parameters'] / 1e6:.2f} M-parameter U-Net on generated "
            f"{f['patch']} px cell images, seed {f['seed']}, with the elastic and intensity augmentation of `04_learner`. It "
            f"scored a foreground Dice of {f['foreground_dice']:.3f} on {f['heldout_images']} held-out images. The augmented "
            f"model is under-confident, and a temperature of {f['temperature']:.2f} fitted on the validation images brought "
            f"the expected calibration error from {f['ece_before']:.3f} to {f['ece_after']:.3f}. Ranking the held-out images by "
            f"their share of unconfident pixels follows their true pixel error (Spearman {f['spearman']:.2f}; "
            f"{f['heldout_images']} images make it a rough figure). Objects were counted with the defaults of `measure` "
            f"(specks under 16 px dropped) and, because these are round touching cells, split by a distance watershed: "
            f"{f['predicted_objects']} objects for the {f['true_instances']} true cells, object F1 {f['object_f1']:.2f} at "
            f"IoU 0.5 (AP {f['ap50']:.2f}), with {f['merges']} merges of touching cells, the reason the course teaches "
            f"instance masks. `tests/test_demo.py` runs the demo again and fails when these figures drift.")
