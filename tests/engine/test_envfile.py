from pathlib import Path

from workbench.engine.envfile import parse_env_text, voicemode_env_files


def test_plain_values_comments_and_blank_lines() -> None:
    env = parse_env_text("# header\n\nVOICEMODE_STREAM_BUFFER_MS=200\nVOICEMODE_VOICES=af_sky,alloy\n")
    assert env.ok
    assert env.as_dict() == {"VOICEMODE_STREAM_BUFFER_MS": "200", "VOICEMODE_VOICES": "af_sky,alloy"}


def test_quotes_are_stripped_and_may_span_lines() -> None:
    env = parse_env_text("A='one two'\nB=\"x\ny\"\nC=plain\n")
    assert env.ok
    assert env.as_dict() == {"A": "one two", "B": "x\ny", "C": "plain"}
    b = next(e for e in env.entries if e.key == "B")
    assert (b.line, b.end_line, b.quoted) == (2, 3, True)


def test_later_lines_win() -> None:
    assert parse_env_text("A=1\nA=2\n").as_dict() == {"A": "2"}


def test_export_prefix_is_flagged_as_voicemode_misreads_it() -> None:
    env = parse_env_text("export VOICEMODE_STREAM_BUFFER_MS=200\n")
    assert not env.ok
    assert "export" in str(env.issues[0])
    # the key is what voicemode would see: not the real variable
    assert "VOICEMODE_STREAM_BUFFER_MS" not in env.as_dict()


def test_trailing_comment_stays_in_the_value_and_is_flagged() -> None:
    env = parse_env_text("VOICEMODE_STREAM_CHUNK_SIZE=4096 # bigger is better\n")
    assert env.as_dict()["VOICEMODE_STREAM_CHUNK_SIZE"] == "4096 # bigger is better"
    assert "comment" in str(env.issues[0])


def test_unclosed_quote_swallows_the_rest_and_is_flagged() -> None:
    env = parse_env_text("A='never closed\nB=1\n")
    assert [str(i) for i in env.issues] == ["line 1: the quote opened for A is never closed"]
    assert not env.ok


def test_garbage_line_is_flagged_with_its_number() -> None:
    env = parse_env_text("B=1\nthis is not a setting\n")
    assert [str(i) for i in env.issues] == ["line 2: not a KEY=VALUE line: 'this is not a setting'"]
    assert env.as_dict() == {"B": "1"}


def test_voicemode_file_discovery_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".voicemode").mkdir(parents=True)
    global_file = home / ".voicemode" / "voicemode.env"
    global_file.write_text("A=1\n")
    project = tmp_path / "proj" / "sub"
    project.mkdir(parents=True)
    project_file = tmp_path / "proj" / ".voicemode.env"
    project_file.write_text("A=2\n")
    assert voicemode_env_files(project, home) == [global_file, project_file]
    assert voicemode_env_files(tmp_path, home) == [global_file]
