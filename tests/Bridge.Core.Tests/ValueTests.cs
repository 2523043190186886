namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ValueTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    [Fact(Timeout = 30000)]
    public async Task Array_starts_zeroed_and_reads_back_writes()
    {
        var s = await NewSession();
        var v = Value(NewName("arr"));
        var info = await v.Open(s, OpenMode.Create, "i", 4, true, [], "lk", LockKind.RLock);
        Assert.Equal(new ValueDescriptor("i", 4, 4, true, "lk", LockKind.RLock, info.SegmentPath), info);

        Assert.Equal(new byte[16], await v.Read(s, 0, 0));
        await v.Write(s, 1, [.. BitConverter.GetBytes(7), .. BitConverter.GetBytes(-1)]);

        Assert.Equal(7, BitConverter.ToInt32(await v.Read(s, 1, 1)));
        Assert.Equal(-1, BitConverter.ToInt32(await v.Read(s, 2, 1)));
        Assert.Equal(8, (await v.Read(s, 2, 0)).Length);
    }

    [Fact(Timeout = 30000)]
    public async Task Initial_contents_are_kept_and_shared_with_attachers()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("val");
        await Value(name).Open(a, OpenMode.Create, "d", 1, false, BitConverter.GetBytes(2.5), "", LockKind.RLock);

        var attached = await Value(name).Open(b, OpenMode.CreateOrAttach, "d", 1, false, [], "", LockKind.RLock);

        Assert.Equal(8, attached.ItemSize);
        Assert.Equal(2.5, BitConverter.ToDouble(await Value(name).Read(b, 0, 1)));
    }

    [Fact(Timeout = 30000)]
    public async Task Unknown_typecode_is_TypeError()
    {
        var s = await NewSession();
        await AssertBridgeError(() => Value(NewName("v")).Open(s, OpenMode.Create, "z", 1, false, [], "", LockKind.RLock), BridgeErrorCode.InvalidArgument, "TypeError", "unknown typecode 'z'");
    }

    [Fact(Timeout = 30000)]
    public async Task Bad_lengths_and_initial_contents_are_InvalidArgument()
    {
        var s = await NewSession();
        await AssertBridgeError(() => Value(NewName("v")).Open(s, OpenMode.Create, "i", 0, true, [], "", LockKind.RLock), BridgeErrorCode.InvalidArgument, "ValueError");
        await AssertBridgeError(() => Value(NewName("v")).Open(s, OpenMode.Create, "i", 2, false, [], "", LockKind.RLock), BridgeErrorCode.InvalidArgument, "ValueError");
        await AssertBridgeError(() => Value(NewName("v")).Open(s, OpenMode.Create, "i", 2, true, new byte[7], "", LockKind.RLock), BridgeErrorCode.InvalidArgument, "ValueError", "7 bytes");
    }

    [Fact(Timeout = 30000)]
    public async Task Out_of_range_access_is_IndexError()
    {
        var s = await NewSession();
        var v = Value(NewName("arr"));
        await v.Open(s, OpenMode.Create, "h", 3, true, [], "", LockKind.RLock);

        await AssertBridgeError(() => v.Read(s, 4, 1), BridgeErrorCode.InvalidArgument, "IndexError");
        await AssertBridgeError(() => v.Read(s, -1, 1), BridgeErrorCode.InvalidArgument, "IndexError");
        await AssertBridgeError(() => v.Read(s, 2, 2), BridgeErrorCode.InvalidArgument, "IndexError");
        await AssertBridgeError(() => v.Write(s, 2, new byte[4]), BridgeErrorCode.InvalidArgument, "IndexError");
        await AssertBridgeError(() => v.Write(s, 0, new byte[3]), BridgeErrorCode.InvalidArgument, "ValueError", "not whole 'h' items");
        Assert.Equal(new byte[6], await v.Read(s, 0, 0));
    }

    [Fact(Timeout = 30000)]
    public async Task CreateOrAttach_with_another_shape_is_AlreadyExists()
    {
        var s = await NewSession();
        var name = NewName("arr");
        await Value(name).Open(s, OpenMode.Create, "i", 4, true, [], "", LockKind.RLock);

        await AssertBridgeError(() => Value(name).Open(s, OpenMode.CreateOrAttach, "i", 5, true, [], "", LockKind.RLock), BridgeErrorCode.AlreadyExists, "FileExistsError", "an Array of 4 'i'");
        await AssertBridgeError(() => Value(name).Open(s, OpenMode.CreateOrAttach, "d", 4, true, [], "", LockKind.RLock), BridgeErrorCode.AlreadyExists, "FileExistsError");
    }

    [Theory(Timeout = 30000)]
    [InlineData("l", "q")]
    [InlineData("q", "l")]
    [InlineData("L", "Q")]
    [InlineData("Q", "L")]
    [InlineData("i", "i")]
    public async Task CreateOrAttach_with_a_typecode_of_the_same_kind_and_size_attaches_and_answers_the_values_own(string existing, string requested)
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("val");
        var initial = new byte[2 * Typecodes.ItemSize(existing)];
        initial[0] = 7;
        var created = await Value(name).Open(a, OpenMode.Create, existing, 2, true, initial, "", LockKind.RLock);

        var attached = await Value(name).Open(b, OpenMode.CreateOrAttach, requested, 2, true, [], "", LockKind.RLock);

        Assert.Equal(created, attached);
        Assert.Equal(existing, attached.Typecode);
        Assert.Equal(7, (await Value(name).Read(b, 0, 1))[0]);
    }

    [Theory(Timeout = 30000)]
    [InlineData("i", "l")]
    [InlineData("l", "i")]
    [InlineData("l", "Q")]
    [InlineData("Q", "q")]
    [InlineData("q", "d")]
    [InlineData("f", "i")]
    [InlineData("c", "b")]
    [InlineData("B", "?")]
    [InlineData("u", "I")]
    public async Task CreateOrAttach_with_another_kind_or_size_of_typecode_is_AlreadyExists(string existing, string requested)
    {
        var s = await NewSession();
        var name = NewName("val");
        await Value(name).Open(s, OpenMode.Create, existing, 1, false, [], "", LockKind.RLock);

        await AssertBridgeError(
            () => Value(name).Open(s, OpenMode.CreateOrAttach, requested, 1, false, [], "", LockKind.RLock),
            BridgeErrorCode.AlreadyExists,
            "FileExistsError",
            $"a Value of type '{existing}', not a Value of type '{requested}'");
    }

    [Fact(Timeout = 30000)]
    public async Task The_segment_file_is_the_values_memory_and_goes_when_the_value_is_freed()
    {
        var s = await NewSession();
        var v = Value(NewName("arr"));
        var info = await v.Open(s, OpenMode.Create, "i", 3, true, [.. BitConverter.GetBytes(5), .. new byte[8]], "", LockKind.RLock);
        var path = info.SegmentPath;
        Assert.StartsWith("gilbridge-", Path.GetFileName(path), StringComparison.Ordinal);

        // What another process sees in the file is what the host holds, both ways.
        await v.Write(s, 2, BitConverter.GetBytes(-9));
        var seen = await File.ReadAllBytesAsync(path);
        Assert.Equal([.. BitConverter.GetBytes(5), .. new byte[4], .. BitConverter.GetBytes(-9)], seen);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.Position = 4;
            await file.WriteAsync(BitConverter.GetBytes(42));
        }

        Assert.Equal(42, BitConverter.ToInt32(await v.Read(s, 1, 1)));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        await Session(s).End();
        Assert.False(File.Exists(path), "the freed value's segment file should be deleted");
    }
}
