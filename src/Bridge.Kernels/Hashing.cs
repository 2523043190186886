using System.Security.Cryptography;

namespace Bridge.Kernels;

/// <summary>Hashing kernels: bytes in, bytes out (MessagePack bin both ways, Python <c>bytes</c>).</summary>
public static class Hashing
{
    /// <summary>The SHA-256 digest of <paramref name="data"/>.</summary>
    /// <param name="data">The bytes to hash.</param>
    /// <returns>The 32-byte digest.</returns>
    public static byte[] Sha256(byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return SHA256.HashData(data);
    }
}
