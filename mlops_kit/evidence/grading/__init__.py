"""The grader: rubric criteria as registered functions, integrity checks and the score report.

Add a chapter criterion in three steps: a row in ``rubric.md`` under ``## Chapter N``; a
function in ``mlops_kit/evidence/grading/chNN.py`` decorated with ``@criterion("CN.k")``
that reads the chapter's artifacts through the ``GradingContext`` and returns
``Grade(level, why)``; a test. Recompute from raw artifacts (``recompute.py`` has
independent helpers: PSI from samples, audit-chain export verification) rather than
trusting a value the notebook wrote.
"""

from .base import Grade, GradingContext, MissingEvidence, criterion, registered_criteria
from .grader import GradeReport, check_parity, grade_pack
from .recompute import ChainReport, psi_from_samples, verify_audit_export

__all__ = ["ChainReport", "Grade", "GradeReport", "GradingContext", "MissingEvidence",
           "check_parity", "criterion", "grade_pack", "psi_from_samples", "registered_criteria",
           "verify_audit_export"]
