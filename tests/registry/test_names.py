import pytest

from doge.errors import DogeError
from doge.names import Ref, parse_ref, parse_weighted_ref, validate_alias, validate_name


@pytest.mark.parametrize("name", ["real->painting", "day->night", "photos", "a.b_c-d->x9", "sd21-real->v2.sketch"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["Real->painting", "a->b->c", "->b", "a->", "real painting", "", "a/b", "é->b"])
def test_invalid_names_state_the_rule(name):
    with pytest.raises(DogeError, match="lowercase letters"):
        validate_name(name)


def test_a_name_cut_by_a_shell_redirect_says_to_quote_it():
    with pytest.raises(DogeError, match="quote the name"):
        validate_name("real-")


def test_refs():
    assert parse_ref("real->painting") == Ref("real->painting")
    assert parse_ref("real->painting@v2") == Ref("real->painting", version=2)
    assert parse_ref("real->painting@prod") == Ref("real->painting", alias="prod")
    assert parse_ref("real->painting@latest") == Ref("real->painting")
    assert str(parse_ref("x@v12")) == "x@v12"
    assert str(parse_ref("x@prod")) == "x@prod"


def test_bad_refs():
    with pytest.raises(DogeError, match="ends in '@'"):
        parse_ref("x@")
    with pytest.raises(DogeError, match="invalid alias"):
        parse_ref("x@Prod")


def test_aliases():
    assert validate_alias("prod") == "prod"
    with pytest.raises(DogeError, match="implied"):
        validate_alias("latest")
    with pytest.raises(DogeError, match="reserved for versions"):
        validate_alias("v3")


def test_weighted_refs_for_gap_arithmetic():
    assert parse_weighted_ref("day->night:0.5") == (Ref("day->night"), 0.5)
    assert parse_weighted_ref("day->night@v2:-1") == (Ref("day->night", version=2), -1.0)
    assert parse_weighted_ref("day->night") == (Ref("day->night"), 1.0)
    with pytest.raises(DogeError, match="REF:NUMBER"):
        parse_weighted_ref("day->night:lots")


# -- 7. messages that said the wrong thing -------------------------------------------------


@pytest.mark.parametrize(
    "name, says, never",
    [
        ("a" * 300, "the limit is 200", "lowercase"),
        ("x'; drop table t; --", "invalid gap name", "redirect"),
        ("x--", "invalid gap name", "redirect"),
        ("real-", "redirect", None),
    ],
)
def test_name_messages_name_the_real_problem(name, says, never):
    with pytest.raises(DogeError) as info:
        validate_name(name)
    assert says in str(info.value) and (never is None or never not in str(info.value))
    assert len(str(info.value)) < 300
