"""Every journal op code has a golden record (tests/golden/ops/) that still decodes to its
sample op and that the current encoder reproduces byte for byte."""

from __future__ import annotations

import pytest
from goldens import GOLDEN, load_golden

from nsd.journal.ops import OPS, RESERVED_CODES, decode_op
from nsd.journal.record import encode_record, scan_all

g = load_golden()
HOW_TO_ADD = (
    "add a sample of it to SAMPLE_OPS in tests/golden/make_golden.py, then run "
    "`python tests/golden/make_golden.py` (it writes only the missing golden files)"
)


@pytest.mark.parametrize("code", sorted(OPS))
def test_every_op_code_has_a_golden_record(code: int) -> None:
    name = OPS[code].__name__
    assert code in g.SAMPLE_OPS, f"op {code} ({name}) has no sample: {HOW_TO_ADD}"
    path = GOLDEN / "ops" / g.op_file_name(code)
    assert path.exists(), f"op {code} ({name}) has no golden record {path.name}: {HOW_TO_ADD}"


def test_every_golden_record_names_a_known_op() -> None:
    known = {g.op_file_name(code) for code in OPS}
    strays = sorted(p.name for p in (GOLDEN / "ops").iterdir() if p.name not in known)
    assert strays == [], "golden records of no op: an op code is never retired (see RESERVED_CODES)"
    assert not RESERVED_CODES & g.SAMPLE_OPS.keys()


@pytest.mark.parametrize("code", sorted(g.SAMPLE_OPS))
def test_golden_record_decodes_to_its_sample_and_re_encodes_exactly(code: int) -> None:
    data = (GOLDEN / "ops" / g.op_file_name(code)).read_bytes()
    records, stop = scan_all(data)
    assert stop.clean and stop.offset == len(data) and len(records) == 1
    rec = records[0]
    assert (rec.txid, rec.code) == (code, code)
    sample = g.SAMPLE_OPS[code]
    assert decode_op(rec.code, rec.payload) == sample
    assert encode_record(code, sample.CODE, sample.encode()) == data
