from .client import (  # noqa: F401
    CruxAuthError,
    CruxClient,
    CruxDataError,
    CruxError,
    CruxNoPackageError,
    CruxOrderNotFoundError,
    CruxOrgTypeError,
    CruxTransientError,
)
