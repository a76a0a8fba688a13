"""GB 11643 citizen ID numbers: the check digit, vectorised for the generator.

The pipeline itself checks IDs in SQL (sql/macros.sql, `id_check_digit`); tests hold both to
python-stdnum's `stdnum.cn.ric.calc_check_digit`. We deliberately do not call stdnum's
`validate()` on people: it rejects an ID whose region code was not in force in the birth year, but
IDs are issued at registration and outlive abolished codes (辽中县 210122 became 辽中区 in 2016,
and its residents keep their numbers).
"""

from __future__ import annotations

import numpy as np

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CHECK_CHARS = np.array(list("10X98765432"))


def check_digits(bodies: np.ndarray) -> np.ndarray:
    """Check characters for an array of 17-digit ID bodies."""
    bodies = np.asarray(bodies).astype("U17")
    digits = bodies.view("U1").reshape(len(bodies), 17).astype(int)
    return CHECK_CHARS[(digits @ WEIGHTS) % 11]


def mask_id(id_number: str) -> str:
    """An ID number as reports and messages show it: the first 6 and last 4 characters (the SQL
    macro mask_id in sql/macros.sql does the same)."""
    return f"{id_number[:6]}********{id_number[-4:]}"
