namespace Bridge.Client;

/// <summary>How opening a shared object by name treats an existing object of that name.</summary>
public enum BridgeOpenMode
{
    /// <summary>
    /// Create the object, or attach to the existing one of that name when its kind and
    /// parameters match (<see cref="ArgumentException"/> otherwise). A null name always
    /// creates a new anonymous object, whose name the handle carries.
    /// </summary>
    CreateOrAttach = 0,

    /// <summary>
    /// Attach only (Python's <c>create=False</c>): <see cref="KeyNotFoundException"/> when no
    /// such object exists. The object's own parameters win over those passed.
    /// </summary>
    Attach = 1,

    /// <summary>Create only: <see cref="ArgumentException"/> when the name is taken.</summary>
    Create = 2,
}
