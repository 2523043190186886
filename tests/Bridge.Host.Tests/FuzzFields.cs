using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Bridge.Host.Tests;

/// <summary>What the fuzz tests share: putting a generated value into a message's field.</summary>
internal static class FuzzFields
{
    /// <summary>Sets <paramref name="field"/> of <paramref name="message"/> to <paramref name="value"/>, or adds it when the field is repeated.</summary>
    public static void Put(IMessage message, FieldDescriptor field, object value)
    {
        if (field.IsRepeated)
        {
            ((System.Collections.IList)field.Accessor.GetValue(message)).Add(value);
        }
        else
        {
            field.Accessor.SetValue(message, value);
        }
    }
}
