namespace Bridge.Core.Objects;

/// <summary>The rules for object names, shared by every family.</summary>
public static class ObjectNames
{
    public const int MaxLength = 200;

    /// <summary>Prefix of names the host generates for anonymous objects; users cannot create such names.</summary>
    public const char AnonymousPrefix = '~';

    public static string NewAnonymous() => AnonymousPrefix + Guid.NewGuid().ToString("N");

    /// <summary>A name the host generated for an anonymous object.</summary>
    public static bool IsAnonymous(string name) => name.Length > 0 && name[0] == AnonymousPrefix;

    /// <summary>
    /// Valid: 1..200 characters of letters, digits and <c>_ . - : /</c>; or a name the host
    /// generated (only to attach). Throws InvalidArgument/ValueError otherwise.
    /// </summary>
    public static void Validate(string name, bool creating)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw BridgeException.InvalidArgument("object name must not be empty");
        }

        if (name.Length > MaxLength)
        {
            throw BridgeException.InvalidArgument($"object name is {name.Length} characters long; the limit is {MaxLength}");
        }

        var body = name.AsSpan();
        if (body[0] == AnonymousPrefix)
        {
            if (creating)
            {
                throw BridgeException.InvalidArgument($"object names starting with '{AnonymousPrefix}' are reserved for anonymous objects");
            }

            body = body[1..];
        }

        foreach (var c in body)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or ':' or '/'))
            {
                throw BridgeException.InvalidArgument(
                    $"invalid object name '{name}': use letters, digits and _ . - : / only");
            }
        }
    }
}
