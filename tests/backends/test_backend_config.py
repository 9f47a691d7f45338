"""models.yaml and the geometry choices made from it: buckets, sizes, prices, user overrides."""

from __future__ import annotations

import pytest

from ggt_datasets.backends import config, make_generator


@pytest.fixture(scope="module")
def cfg():
    return config.load_config()


@pytest.mark.parametrize(
    "size, ratio",
    [((1000, 1000), "1:1"), ((1920, 1080), "16:9"), ((1080, 1920), "9:16"), ((800, 600), "4:3"),
     ((600, 800), "3:4"), ((1200, 800), "3:2"), ((1000, 800), "5:4"), ((2520, 1080), "21:9"),
     ((4000, 1000), "21:9"), ((451, 300), "3:2")],
)  # fmt: skip
def test_aspect_ratio_bucket_is_the_nearest(cfg, size, ratio):
    assert config.choose_aspect_ratio(*size, cfg) == ratio


def test_every_bucket_has_its_ratio_and_sizes_grow(cfg):
    for label in ("1K", "2K", "4K"):
        for ratio, (w, h) in config.gemini_buckets(cfg, label).items():
            assert abs(w / h - config.ratio_value(ratio)) < 0.03, (label, ratio)
    assert config.gemini_buckets(cfg, "2K")["1:1"] == (2048, 2048)


def test_image_size_covers_the_lq_up_to_the_cap(cfg):
    assert config.choose_image_size(900, 600, cfg) == "1K"
    assert config.choose_image_size(1800, 1200, cfg) == "2K"
    assert config.choose_image_size(5000, 3000, cfg, max_size="2K") == "2K"
    assert config.choose_image_size(5000, 3000, cfg, max_size="4K") == "4K"
    with pytest.raises(ValueError, match="unknown Gemini image size '8K'"):
        config.choose_image_size(10, 10, cfg, max_size="8K")


def test_openai_size_nearest(cfg):
    assert config.choose_openai_size(1200, 800, cfg) == "1536x1024"
    assert config.choose_openai_size(600, 900, cfg) == "1024x1536"
    assert config.choose_openai_size(500, 520, cfg) == "1024x1024"


def test_user_file_merges_over_the_packaged_one(tmp_path, cfg):
    user = tmp_path / "mine.yaml"
    user.write_text("generators:\n  gemini:\n    model: my-image-model\n"
                    "prices:\n  my-image-model: {input: 1, output: 2}\n")
    merged = config.load_config(user)
    assert merged["generators"]["gemini"]["model"] == "my-image-model"
    assert merged["generators"]["gemini"]["api_version"] == cfg["generators"]["gemini"]["api_version"]
    assert config.model_prices(merged, "my-image-model") == {"input": 1.0, "output": 2.0}
    gen = make_generator("gemini", config_path=str(user), api_key="k", base_url="http://127.0.0.1:9")
    assert gen.model == "my-image-model" and gen.prices == {"input": 1.0, "output": 2.0}
    assert config.model_prices(cfg, "no-such-model") == {}


def test_bad_config_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        config.load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("generators: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        config.load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="list.yaml: expected a mapping"):
        config.load_config(listy)


def test_model_ids_live_only_in_models_yaml():
    """No string constant in backend code (docstrings aside) names a model."""
    import ast
    from pathlib import Path

    import ggt_datasets.backends as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not any(m in node.value for m in ("gemini-3", "gemini-2", "gpt-image", "gpt-5")), (
                    f"{path.name}:{node.lineno} hard-codes a model id: {node.value!r}"
                )
