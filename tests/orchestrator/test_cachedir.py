from clicloop.orchestrator.cachedir import ENV, cache_dir


def test_the_environment_variable_chooses_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "root"))
    where = cache_dir("embeddings", "minilm")
    assert where == tmp_path / "root" / "embeddings" / "minilm"
    assert where.is_dir()


def test_without_it_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("graphs") == tmp_path / "xdg" / "clicloop" / "graphs"
