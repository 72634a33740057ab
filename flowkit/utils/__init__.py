"""TaskFlow's ``taskflow.utils`` import paths, for code moving from TaskFlow.

flowkit keeps helpers beside the concept they serve; the modules here only re-export them under the
paths TaskFlow code imports (:mod:`.persistence_utils`), plus the few small helpers TaskFlow programs
call (:mod:`.threading_utils`, :mod:`.misc`, :mod:`.kazoo_utils`). There is no grab-bag of helpers here.
"""
