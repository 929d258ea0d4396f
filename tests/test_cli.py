"""Settings blocks and flags: same names, types, booleans, unknown flags, printed overrides."""
import pytest

from gacrystal.cli import layer_recipes, parse_settings, read_settings_block

SCRIPT = '''
x = 1
# --- settings (edit here)
data = "images/split"  # where the data is
batch_size = 64  # images per step
lr = 0.1  # learning rate
weights = "imagenet"  # imagenet, none, or a file
shuffle = False  # shuffle first
# --- end of settings
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


def test_block_gives_names_defaults_and_help(script):
    assert read_settings_block(script) == [
        ("data", "images/split", "where the data is"), ("batch_size", 64, "images per step"),
        ("lr", 0.1, "learning rate"), ("weights", "imagenet", "imagenet, none, or a file"),
        ("shuffle", False, "shuffle first")]


def test_no_arguments_use_the_block(script):
    settings, given = parse_settings(script, "test", [])
    assert settings == {"data": "images/split", "batch_size": 64, "lr": 0.1,
                        "weights": "imagenet", "shuffle": False}
    assert given == set()


def test_flags_override_with_types_and_are_printed(script, capsys):
    settings, given = parse_settings(
        script, "test", ["--batch-size", "32", "--lr", "1e-4", "--shuffle", "--weights", "none"])
    assert settings["batch_size"] == 32 and settings["lr"] == 1e-4
    assert settings["shuffle"] is True and settings["weights"] is None
    assert given == {"batch_size", "lr", "shuffle", "weights"}
    assert "override: batch_size = 32 (settings block: 64)" in capsys.readouterr().out


def test_unknown_flag_and_bad_type_are_errors(script):
    with pytest.raises(SystemExit):
        parse_settings(script, "test", ["--batchsize", "32"])
    with pytest.raises(SystemExit):
        parse_settings(script, "test", ["--batch_size", "many"])


def test_a_mistyped_flag_is_one_line_with_the_closest_name_and_no_usage(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(script, "test", ["--wieghts", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("error: unrecognized arguments: --wieghts x "
                                   "(did you mean --weights?)")
    assert "usage:" not in err and "script.py --help" in err


def test_a_prefix_of_a_flag_is_an_error_not_that_flag(script, capsys):
    with pytest.raises(SystemExit):
        parse_settings(script, "test", ["--batch", "32"])
    assert "did you mean --batch_size?" in capsys.readouterr().err


def test_a_flag_typed_with_the_block_value_still_counts_as_given(script):
    settings, given = parse_settings(script, "test", ["--lr", "0.1", "--no-shuffle"])
    assert given == {"lr", "shuffle"} and settings["lr"] == 0.1


def test_recipes_fill_only_what_was_not_typed_and_say_where_each_value_came_from(script):
    settings, given = parse_settings(script, "test", ["--lr", "0.1"])
    settings, source = layer_recipes(settings, given, [("demo", {"lr": 0.01, "batch_size": 16}),
                                                       ("preset paper", {"batch_size": 32})])
    assert settings["lr"] == 0.1 and settings["batch_size"] == 32
    assert source == {"data": "settings block", "batch_size": "preset paper",
                      "lr": "command line", "weights": "settings block",
                      "shuffle": "settings block"}


def test_a_renamed_flag_still_works(script):
    settings, given = parse_settings(script, "test", ["--folder", "x"], renamed={"folder": "data"})
    assert settings["data"] == "x" and given == {"data"}
