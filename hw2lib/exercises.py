"""Exercises: checkers that run a reader's own code against the library's reference.

Each ``check_*`` function takes the reader's function (or class, or number) first, runs it on
many random and edge-case inputs next to the reference implementation of :mod:`hw2lib.convolution`
(chapter 1), :mod:`hw2lib.cnn` (chapter 2), :mod:`hw2lib.seq2seq` and :mod:`hw2lib.decoding`
(chapter 3), and returns a :class:`~hw2lib.exercise_checks.CheckResult`: ``passed``, a short
``message`` and, when the answer matches a known wrong answer, the ``mistake`` it made (a key of
:data:`~hw2lib.exercise_checks.MISTAKES`, whose hint the message quotes). A checker never raises
because of the reader's code: an exception inside it becomes a failed result naming it, and
``NotImplementedError`` (the starter stubs) becomes a "not implemented yet" result. For example::

    from hw2lib.exercises import check_conv_output_shape
    check_conv_output_shape(my_conv_output_shape)  # shows "✓ Passed: ..." or "✗ Not yet: ..."

This module is the one place to import them from; each chapter's checkers live in their own module:

- chapter 1 (:mod:`hw2lib.exercises_ch1`): :func:`~hw2lib.exercises_ch1.check_conv_output_shape`
  (Q1.1 (a)), :func:`~hw2lib.exercises_ch1.check_conv_matrix` and
  :func:`~hw2lib.exercises_ch1.check_conv_matrix_entry` (Q1.1 (b)),
  :func:`~hw2lib.exercises_ch1.check_parameter_counts` (Q1.1 (c)),
  :func:`~hw2lib.exercises_ch1.check_self_attention` (Q1.2);
- chapter 2 (:mod:`hw2lib.exercises_ch2`): :func:`~hw2lib.exercises_ch2.check_cnn_without_first_pool`
  (Q2.1), :func:`~hw2lib.exercises_ch2.check_cnn` (Q2.4);
- chapter 3 (:mod:`hw2lib.exercises_ch3`): :func:`~hw2lib.exercises_ch3.check_greedy_decode`
  (Q3.1 (a)), :func:`~hw2lib.exercises_ch3.check_bilinear_attention` (Q3.1 (b)),
  :func:`~hw2lib.exercises_ch3.check_beam_search` (Q3.1 (c)).

:class:`~hw2lib.exercise_checks.CheckResult`, :data:`~hw2lib.exercise_checks.MISTAKES` and the
machinery every checker shares live in :mod:`hw2lib.exercise_checks`.
"""

from __future__ import annotations

from .exercise_checks import MISTAKES, CheckResult
from .exercises_ch1 import (
    CLASSES,
    COUNT_CASES,
    MATRIX_CASES,
    SHAPE_CASES,
    check_conv_matrix,
    check_conv_matrix_entry,
    check_conv_output_shape,
    check_parameter_counts,
    check_self_attention,
)
from .exercises_ch2 import check_cnn, check_cnn_without_first_pool, cnn_without_first_pool_parameters
from .exercises_ch3 import (
    ATTENTION_CASES,
    ATTENTION_VARIANTS,
    SMALL_HIDDEN,
    SMALL_SOURCE_VOCAB,
    SMALL_TARGET_VOCAB,
    check_beam_search,
    check_bilinear_attention,
    check_greedy_decode,
    small_translator,
)

__all__ = [
    # shared (hw2lib.exercise_checks)
    "CheckResult", "MISTAKES",
    # chapter 1 (hw2lib.exercises_ch1)
    "check_conv_output_shape", "check_conv_matrix", "check_conv_matrix_entry", "check_parameter_counts",
    "check_self_attention", "CLASSES", "SHAPE_CASES", "MATRIX_CASES", "COUNT_CASES",
    # chapter 2 (hw2lib.exercises_ch2)
    "check_cnn", "check_cnn_without_first_pool", "cnn_without_first_pool_parameters",
    # chapter 3 (hw2lib.exercises_ch3)
    "check_bilinear_attention", "check_greedy_decode", "check_beam_search", "small_translator",
    "ATTENTION_CASES", "ATTENTION_VARIANTS", "SMALL_SOURCE_VOCAB", "SMALL_TARGET_VOCAB", "SMALL_HIDDEN",
]
