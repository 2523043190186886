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
    /// The one rule for object names (the protos' ObjectRef.name points here). Valid: 1..200
    /// characters (so at most 200 bytes of UTF-8), each an ASCII letter or digit or one of
    /// <c>_ . - : /</c>; or a name the host generated (<c>~</c> and 32 hex digits), only to
    /// attach or target. So no space, no C0 or C1 control character, DEL or other non-ASCII
    /// character; an empty name only where the call makes an anonymous object. Throws
    /// InvalidArgument/ValueError otherwise, with a message that names the first bad
    /// character by its code point and never echoes a control character.
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

        for (var i = 0; i < body.Length; i++)
        {
            if (!IsNameCharacter(body[i]))
            {
                // The name is shown with every character outside printable ASCII as '?', and
                // the first bad one by its code point: a status message never carries a
                // control character (a NUL, a newline, an escape sequence) back to a log.
                var at = i + (name.Length - body.Length);
                throw BridgeException.InvalidArgument(
                    $"invalid object name '{Printable(name)}': character U+{(int)body[i]:X4} at index {at} is not allowed; use ASCII letters, digits and _ . - : / only");
            }
        }
    }

    private static bool IsNameCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or ':' or '/';

    private static string Printable(string name) =>
        string.Create(name.Length, name, static (span, source) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = source[i] is >= ' ' and <= '~' ? source[i] : '?';
            }
        });
}
