from .client import (
    CruxAuthError,
    CruxClient,
    CruxDataError,
    CruxError,
    CruxNoPackageError,
    CruxOrderNotFoundError,
    CruxOrgTypeError,
    CruxTransientError,
)
