using System.Buffers.Binary;
using System.Text;

namespace Bookstore.IntegrationTests.Fixture;

/// <summary>The kinds of <c>opentelemetry.proto.trace.v1.Span.SpanKind</c>, same numbers.</summary>
public enum OtlpSpanKind
{
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

/// <summary>One span as an OTLP exporter sent it. Ids are lower-case hex (trace 32, span 16
/// characters); <see cref="ParentSpanId"/> is null for a root span. Attribute values are
/// <see cref="string"/>, <see cref="bool"/>, <see cref="long"/>, <see cref="double"/>,
/// <see cref="byte"/>[], an <see cref="IReadOnlyList{T}"/> of values (an array) or an
/// <see cref="IReadOnlyDictionary{TKey, TValue}"/> (a key-value list).</summary>
public sealed record OtlpSpan(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    OtlpSpanKind Kind,
    DateTimeOffset Start,
    DateTimeOffset End,
    IReadOnlyDictionary<string, object?> Attributes,
    IReadOnlyList<OtlpLink> Links,
    IReadOnlyList<OtlpSpanEvent> Events,
    int StatusCode,
    string? StatusMessage,
    string? ServiceName,
    IReadOnlyDictionary<string, object?> Resource,
    string ScopeName,
    string? ScopeVersion)
{
    /// <summary>The attribute as a string (an integer or a boolean in its invariant form), or null when absent.</summary>
    public string? Attribute(string key) => Attributes.TryGetValue(key, out var value) ? OtlpDecoder.Format(value) : null;

    public override string ToString() =>
        $"{ServiceName} {Kind} '{Name}' {TraceId}/{SpanId} parent {ParentSpanId ?? "-"}";
}

public sealed record OtlpLink(string TraceId, string SpanId, string? TraceState, IReadOnlyDictionary<string, object?> Attributes);

public sealed record OtlpSpanEvent(string Name, DateTimeOffset Time, IReadOnlyDictionary<string, object?> Attributes);

/// <summary>One metric of an export: which service sent it and its name (the data points are not decoded).</summary>
public sealed record OtlpMetric(string? ServiceName, string ScopeName, string Name, string? Unit);

/// <summary>One log record: its service, the trace and span it was written in (null when none), severity and body.</summary>
public sealed record OtlpLogRecord(string? ServiceName, string? TraceId, string? SpanId, string? SeverityText, int SeverityNumber, string? Body);

/// <summary>Reads OTLP/protobuf export requests by hand, over the field numbers of
/// opentelemetry-proto (collector/*/v1/*_service.proto, trace/v1/trace.proto, metrics/v1/metrics.proto,
/// logs/v1/logs.proto, common/v1/common.proto, resource/v1/resource.proto): no code generation,
/// and fields it does not know are skipped, as protobuf readers do.</summary>
public static class OtlpDecoder
{
    /// <summary>An <c>ExportTraceServiceRequest</c>.</summary>
    public static List<OtlpSpan> DecodeTraces(ReadOnlySpan<byte> request)
    {
        var spans = new List<OtlpSpan>();
        var reader = new ProtoReader(request);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == WireType.Len)
            {
                ResourceSpans(reader.Bytes(), spans);
            }
            else
            {
                reader.Skip(wire);
            }
        }

        return spans;
    }

    /// <summary>An <c>ExportMetricsServiceRequest</c>: the metrics' names per service.</summary>
    public static List<OtlpMetric> DecodeMetrics(ReadOnlySpan<byte> request)
    {
        var metrics = new List<OtlpMetric>();
        var reader = new ProtoReader(request);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == WireType.Len)
            {
                // ResourceMetrics: resource = 1, scope_metrics = 2.
                var resource = new Dictionary<string, object?>();
                var found = new List<(string Scope, string Name, string? Unit)>();
                var resourceMetrics = new ProtoReader(reader.Bytes());
                while (resourceMetrics.Next(out var f, out var w))
                {
                    switch (f, w)
                    {
                        case (1, WireType.Len): Resource(resourceMetrics.Bytes(), resource); break;
                        case (2, WireType.Len): ScopeMetrics(resourceMetrics.Bytes(), found); break;
                        default: resourceMetrics.Skip(w); break;
                    }
                }

                var service = ServiceName(resource);
                metrics.AddRange(found.Select(m => new OtlpMetric(service, m.Scope, m.Name, m.Unit)));
            }
            else
            {
                reader.Skip(wire);
            }
        }

        return metrics;
    }

    /// <summary>An <c>ExportLogsServiceRequest</c>.</summary>
    public static List<OtlpLogRecord> DecodeLogs(ReadOnlySpan<byte> request)
    {
        var records = new List<OtlpLogRecord>();
        var reader = new ProtoReader(request);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == WireType.Len)
            {
                // ResourceLogs: resource = 1, scope_logs = 2; ScopeLogs: log_records = 2.
                var resource = new Dictionary<string, object?>();
                var found = new List<OtlpLogRecord>();
                var resourceLogs = new ProtoReader(reader.Bytes());
                while (resourceLogs.Next(out var f, out var w))
                {
                    switch (f, w)
                    {
                        case (1, WireType.Len): Resource(resourceLogs.Bytes(), resource); break;
                        case (2, WireType.Len):
                            var scopeLogs = new ProtoReader(resourceLogs.Bytes());
                            while (scopeLogs.Next(out var sf, out var sw))
                            {
                                if (sf == 2 && sw == WireType.Len)
                                {
                                    found.Add(LogRecord(scopeLogs.Bytes()));
                                }
                                else
                                {
                                    scopeLogs.Skip(sw);
                                }
                            }

                            break;
                        default: resourceLogs.Skip(w); break;
                    }
                }

                var service = ServiceName(resource);
                records.AddRange(found.Select(r => r with { ServiceName = service }));
            }
            else
            {
                reader.Skip(wire);
            }
        }

        return records;
    }

    /// <summary>An attribute value in a stable text form, for messages and comparisons.</summary>
    public static string? Format(object? value) => value switch
    {
        null => null,
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        byte[] bytes => Convert.ToHexStringLower(bytes),
        IReadOnlyList<object?> list => "[" + string.Join(", ", list.Select(Format)) + "]",
        IReadOnlyDictionary<string, object?> map => "{" + string.Join(", ", map.Select(kv => $"{kv.Key}: {Format(kv.Value)}")) + "}",
        _ => value.ToString(),
    };

    // ResourceSpans: resource = 1, scope_spans = 2, schema_url = 3.
    private static void ResourceSpans(ReadOnlySpan<byte> bytes, List<OtlpSpan> spans)
    {
        var resource = new Dictionary<string, object?>();
        var found = new List<OtlpSpan>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): Resource(reader.Bytes(), resource); break;
                case (2, WireType.Len): ScopeSpans(reader.Bytes(), found); break;
                default: reader.Skip(wire); break;
            }
        }

        // The resource may come after its spans on the wire.
        var service = ServiceName(resource);
        spans.AddRange(found.Select(s => s with { ServiceName = service, Resource = resource }));
    }

    // Resource: attributes = 1.
    private static void Resource(ReadOnlySpan<byte> bytes, Dictionary<string, object?> attributes)
    {
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == WireType.Len)
            {
                KeyValue(reader.Bytes(), attributes);
            }
            else
            {
                reader.Skip(wire);
            }
        }
    }

    // ScopeSpans: scope = 1, spans = 2.
    private static void ScopeSpans(ReadOnlySpan<byte> bytes, List<OtlpSpan> spans)
    {
        var (scope, version) = (string.Empty, (string?)null);
        var found = new List<OtlpSpan>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): (scope, version) = Scope(reader.Bytes()); break;
                case (2, WireType.Len): found.Add(Span(reader.Bytes())); break;
                default: reader.Skip(wire); break;
            }
        }

        spans.AddRange(found.Select(s => s with { ScopeName = scope, ScopeVersion = version }));
    }

    // ScopeMetrics: scope = 1, metrics = 2; Metric: name = 1, description = 2, unit = 3.
    private static void ScopeMetrics(ReadOnlySpan<byte> bytes, List<(string Scope, string Name, string? Unit)> metrics)
    {
        var scope = string.Empty;
        var found = new List<(string Name, string? Unit)>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): scope = Scope(reader.Bytes()).Name; break;
                case (2, WireType.Len):
                    var metric = new ProtoReader(reader.Bytes());
                    var (name, unit) = (string.Empty, (string?)null);
                    while (metric.Next(out var f, out var w))
                    {
                        switch (f, w)
                        {
                            case (1, WireType.Len): name = metric.String(); break;
                            case (3, WireType.Len): unit = NullIfEmpty(metric.String()); break;
                            default: metric.Skip(w); break;
                        }
                    }

                    found.Add((name, unit));
                    break;
                default: reader.Skip(wire); break;
            }
        }

        metrics.AddRange(found.Select(m => (scope, m.Name, m.Unit)));
    }

    // InstrumentationScope: name = 1, version = 2.
    private static (string Name, string? Version) Scope(ReadOnlySpan<byte> bytes)
    {
        var (name, version) = (string.Empty, (string?)null);
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): name = reader.String(); break;
                case (2, WireType.Len): version = NullIfEmpty(reader.String()); break;
                default: reader.Skip(wire); break;
            }
        }

        return (name, version);
    }

    // Span: trace_id = 1, span_id = 2, trace_state = 3, parent_span_id = 4, name = 5, kind = 6,
    // start_time_unix_nano = 7 (fixed64), end_time_unix_nano = 8 (fixed64), attributes = 9,
    // events = 11, links = 13, status = 15, flags = 16 (fixed32).
    private static OtlpSpan Span(ReadOnlySpan<byte> bytes)
    {
        string traceId = string.Empty, spanId = string.Empty, name = string.Empty;
        string? parent = null, statusMessage = null;
        var kind = OtlpSpanKind.Unspecified;
        ulong start = 0, end = 0;
        var statusCode = 0;
        var attributes = new Dictionary<string, object?>();
        var links = new List<OtlpLink>();
        var events = new List<OtlpSpanEvent>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): traceId = Convert.ToHexStringLower(reader.Bytes()); break;
                case (2, WireType.Len): spanId = Convert.ToHexStringLower(reader.Bytes()); break;
                case (4, WireType.Len): parent = NullIfEmpty(Convert.ToHexStringLower(reader.Bytes())); break;
                case (5, WireType.Len): name = reader.String(); break;
                case (6, WireType.Varint): kind = (OtlpSpanKind)(int)reader.Varint(); break;
                case (7, WireType.Fixed64): start = reader.Fixed64(); break;
                case (8, WireType.Fixed64): end = reader.Fixed64(); break;
                case (9, WireType.Len): KeyValue(reader.Bytes(), attributes); break;
                case (11, WireType.Len): events.Add(Event(reader.Bytes())); break;
                case (13, WireType.Len): links.Add(Link(reader.Bytes())); break;
                case (15, WireType.Len): (statusCode, statusMessage) = Status(reader.Bytes()); break;
                default: reader.Skip(wire); break;
            }
        }

        return new OtlpSpan(traceId, spanId, parent, name, kind, Time(start), Time(end), attributes, links, events,
            statusCode, statusMessage, ServiceName: null, Resource: new Dictionary<string, object?>(), ScopeName: string.Empty, ScopeVersion: null);
    }

    // Span.Link: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4, flags = 6.
    private static OtlpLink Link(ReadOnlySpan<byte> bytes)
    {
        string traceId = string.Empty, spanId = string.Empty;
        string? state = null;
        var attributes = new Dictionary<string, object?>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): traceId = Convert.ToHexStringLower(reader.Bytes()); break;
                case (2, WireType.Len): spanId = Convert.ToHexStringLower(reader.Bytes()); break;
                case (3, WireType.Len): state = NullIfEmpty(reader.String()); break;
                case (4, WireType.Len): KeyValue(reader.Bytes(), attributes); break;
                default: reader.Skip(wire); break;
            }
        }

        return new OtlpLink(traceId, spanId, state, attributes);
    }

    // Span.Event: time_unix_nano = 1 (fixed64), name = 2, attributes = 3.
    private static OtlpSpanEvent Event(ReadOnlySpan<byte> bytes)
    {
        ulong time = 0;
        var name = string.Empty;
        var attributes = new Dictionary<string, object?>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Fixed64): time = reader.Fixed64(); break;
                case (2, WireType.Len): name = reader.String(); break;
                case (3, WireType.Len): KeyValue(reader.Bytes(), attributes); break;
                default: reader.Skip(wire); break;
            }
        }

        return new OtlpSpanEvent(name, Time(time), attributes);
    }

    // Status: message = 2, code = 3.
    private static (int Code, string? Message) Status(ReadOnlySpan<byte> bytes)
    {
        var code = 0;
        string? message = null;
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (2, WireType.Len): message = NullIfEmpty(reader.String()); break;
                case (3, WireType.Varint): code = (int)reader.Varint(); break;
                default: reader.Skip(wire); break;
            }
        }

        return (code, message);
    }

    // LogRecord: time_unix_nano = 1, severity_number = 2, severity_text = 3, body = 5 (AnyValue),
    // attributes = 6, flags = 8, trace_id = 9, span_id = 10.
    private static OtlpLogRecord LogRecord(ReadOnlySpan<byte> bytes)
    {
        string? traceId = null, spanId = null, severityText = null, body = null;
        var severity = 0;
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (2, WireType.Varint): severity = (int)reader.Varint(); break;
                case (3, WireType.Len): severityText = NullIfEmpty(reader.String()); break;
                case (5, WireType.Len): body = Format(AnyValue(reader.Bytes())); break;
                case (9, WireType.Len): traceId = NullIfEmpty(Convert.ToHexStringLower(reader.Bytes())); break;
                case (10, WireType.Len): spanId = NullIfEmpty(Convert.ToHexStringLower(reader.Bytes())); break;
                default: reader.Skip(wire); break;
            }
        }

        return new OtlpLogRecord(null, traceId, spanId, severityText, severity, body);
    }

    // KeyValue: key = 1, value = 2 (AnyValue).
    private static void KeyValue(ReadOnlySpan<byte> bytes, Dictionary<string, object?> into)
    {
        var key = string.Empty;
        object? value = null;
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): key = reader.String(); break;
                case (2, WireType.Len): value = AnyValue(reader.Bytes()); break;
                default: reader.Skip(wire); break;
            }
        }

        into[key] = value;
    }

    // AnyValue (a oneof): string_value = 1, bool_value = 2, int_value = 3 (int64), double_value = 4,
    // array_value = 5 (ArrayValue: values = 1), kvlist_value = 6 (KeyValueList: values = 1), bytes_value = 7.
    private static object? AnyValue(ReadOnlySpan<byte> bytes)
    {
        object? value = null;
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, WireType.Len): value = reader.String(); break;
                case (2, WireType.Varint): value = reader.Varint() != 0; break;
                case (3, WireType.Varint): value = unchecked((long)reader.Varint()); break;
                case (4, WireType.Fixed64): value = BitConverter.UInt64BitsToDouble(reader.Fixed64()); break;
                case (5, WireType.Len): value = ArrayValue(reader.Bytes()); break;
                case (6, WireType.Len):
                    var map = new Dictionary<string, object?>();
                    var list = new ProtoReader(reader.Bytes());
                    while (list.Next(out var f, out var w))
                    {
                        if (f == 1 && w == WireType.Len)
                        {
                            KeyValue(list.Bytes(), map);
                        }
                        else
                        {
                            list.Skip(w);
                        }
                    }

                    value = map;
                    break;
                case (7, WireType.Len): value = reader.Bytes().ToArray(); break;
                default: reader.Skip(wire); break;
            }
        }

        return value;
    }

    private static List<object?> ArrayValue(ReadOnlySpan<byte> bytes)
    {
        var values = new List<object?>();
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == WireType.Len)
            {
                values.Add(AnyValue(reader.Bytes()));
            }
            else
            {
                reader.Skip(wire);
            }
        }

        return values;
    }

    private static string? ServiceName(Dictionary<string, object?> resource) =>
        resource.TryGetValue("service.name", out var name) ? name as string : null;

    private static DateTimeOffset Time(ulong unixNanos) =>
        DateTimeOffset.UnixEpoch.AddTicks(checked((long)(unixNanos / 100)));

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    private enum WireType
    {
        Varint = 0,
        Fixed64 = 1,
        Len = 2,
        StartGroup = 3,
        EndGroup = 4,
        Fixed32 = 5,
    }

    /// <summary>The protobuf wire format: tags (field number and wire type as a varint), varints,
    /// little-endian fixed 32/64-bit values and length-delimited bytes.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> buffer)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _position;

        public bool Next(out int field, out WireType wire)
        {
            if (_position >= _buffer.Length)
            {
                (field, wire) = (0, WireType.Varint);
                return false;
            }

            var tag = Varint();
            field = checked((int)(tag >> 3));
            wire = (WireType)(tag & 7);
            if (field == 0)
            {
                throw new FormatException($"field number 0 at byte {_position}");
            }

            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_position >= _buffer.Length)
                {
                    throw new FormatException("a varint runs past the end of the message");
                }

                var b = _buffer[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return value;
                }
            }

            throw new FormatException("a varint longer than 10 bytes");
        }

        public ulong Fixed64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        public ReadOnlySpan<byte> Bytes() => Take(checked((int)Varint()));

        public string String() => Encoding.UTF8.GetString(Bytes());

        public void Skip(WireType wire)
        {
            switch (wire)
            {
                case WireType.Varint: Varint(); break;
                case WireType.Fixed64: Take(8); break;
                case WireType.Len: Bytes(); break;
                case WireType.Fixed32: Take(4); break;
                default: throw new FormatException($"wire type {(int)wire} (groups are not used by OTLP)");
            }
        }

        private ReadOnlySpan<byte> Take(int length)
        {
            if (length < 0 || _position + length > _buffer.Length)
            {
                throw new FormatException($"{length} bytes at {_position} run past the end of a {_buffer.Length}-byte message");
            }

            var slice = _buffer.Slice(_position, length);
            _position += length;
            return slice;
        }
    }
}
