// P/Invoke binding of the psa-mail-agent C API (include/psa_mail_agent.h) for .NET.
//
// Targets: netstandard2.0-compatible code (C# 7.x language level, no newer language or library
// features; built with Mono's mcs and the .NET SDK): .NET Framework 4.6.1+ / Mono, .NET Core
// 2.0+, .NET 6+. The native library is found as "psa_mail_agent" (libpsa_mail_agent.so,
// libpsa_mail_agent.dylib, psa_mail_agent.dll). No third-party package: the tickets' JSON is
// read into the typed model (Ticket, Address, Attachment) by a small reader in this file.
//
// UTF-8 is marshalled by hand (byte arrays in, pointer + length out), so nothing depends on
// UnmanagedType.LPUTF8Str. Handles are SafeHandles (freed exactly once, even by the
// finalizer); every failed call throws PmaException with the code and the library's message
// for that call (read from the calling thread's record, so threads sharing an agent never see
// each other's). An Agent may be used from several threads (the library serialises its
// calls); the *Async methods run the blocking call on the thread pool and end it through
// pma_cancel when their CancellationToken is cancelled. Batch and Report are immutable.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PsaMailAgent
{
    /// <summary>Result codes of the C API (pma_result). Values never change or get reused;
    /// PmaNative.ResultName gives the C name ("PMA_LOGIN_FAILED").</summary>
    public enum PmaResult : uint
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A required pointer argument was NULL.</summary>
        NullArgument = 100,
        /// <summary>A string argument was not valid UTF-8.</summary>
        InvalidUtf8 = 101,
        /// <summary>The output buffer is too small; the size needed (including the NUL) was written to the size out-parameter.</summary>
        BufferTooSmall = 102,
        /// <summary>The handle is not one this library created for this purpose, or was freed (best-effort check: a freed handle must never be passed).</summary>
        InvalidHandle = 103,
        /// <summary>`pma_ack` was given a batch fetched by another agent handle (or before the handle was rebuilt by `pma_set_oauth_credentials`).</summary>
        ForeignBatch = 104,
        /// <summary>The library panicked inside this call; the call had no effect that can be relied on.</summary>
        Panic = 105,
        /// <summary>An earlier call on this handle panicked while holding it: free the handle and create a new one.</summary>
        Poisoned = 106,
        /// <summary>An index argument is not below the matching count.</summary>
        IndexOutOfRange = 107,
        /// <summary>`pma_ack` was given a batch that was acknowledged already.</summary>
        AlreadyAcked = 108,
        /// <summary>An argument has a value outside its documented range (for example a log level).</summary>
        InvalidArgument = 109,
        /// <summary>Another logger was installed in this process before `pma_set_log_callback` (only possible when the static library is linked into a Rust program that sets its own).</summary>
        LoggerUnavailable = 110,
        /// <summary>The call was ended by `pma_cancel` (Agent.Cancel, or a cancelled CancellationToken). Nothing half-done remains; the next call works.</summary>
        Cancelled = 111,
        /// <summary>`pma_device_login_complete` without a device-code sign-in begun by `pma_device_login_begin`.</summary>
        DeviceLoginNotStarted = 112,
        /// <summary>`pma_batch_raw` on a batch of a mailbox that does not keep raw messages (`keep_raw`).</summary>
        RawNotKept = 113,
        /// <summary>The mailbox JSON or a credential is invalid or missing; the message names the key.</summary>
        Config = 200,
        /// <summary>Local file system: state directory, token cache, or the mailbox is locked by another agent using the same state directory.</summary>
        Io = 201,
        /// <summary>DNS resolution or TCP connect failed.</summary>
        Connect = 300,
        /// <summary>A network step did not finish within `imap.timeout_secs`.</summary>
        Timeout = 301,
        /// <summary>The TLS handshake failed for a reason other than the certificate.</summary>
        Tls = 302,
        /// <summary>The server certificate was refused (unknown CA, expired, wrong host name).</summary>
        Certificate = 303,
        /// <summary>`encryption` is `starttls` but the server does not offer STARTTLS.</summary>
        StarttlsNotOffered = 304,
        /// <summary>Authentication without TLS was refused (`allow_plaintext` is false, or LOGINDISABLED).</summary>
        PlaintextRefused = 305,
        /// <summary>The peer violated the protocol.</summary>
        Protocol = 306,
        /// <summary>The peer closed the connection.</summary>
        ConnectionClosed = 307,
        /// <summary>LOGIN rejected: wrong username or password, or Basic authentication disabled.</summary>
        LoginFailed = 400,
        /// <summary>AUTHENTICATE XOAUTH2 rejected although a token was issued.</summary>
        ImapOauthRejected = 401,
        /// <summary>A shared mailbox the delegate may not open: no Full Access, or no mailbox has the address (Exchange: "User is authenticated but not connected").</summary>
        SharedMailboxDenied = 402,
        /// <summary>The server is temporarily unavailable; retry later.</summary>
        ServerUnavailable = 403,
        /// <summary>The search folder or the processed folder does not exist.</summary>
        FolderNotFound = 404,
        /// <summary>The server refused a command (NO/BAD).</summary>
        ServerRefused = 405,
        /// <summary>App-only: the token was accepted but the app may not open the mailbox (Exchange's "authenticated but not connected"): service principal not registered (New-ServicePrincipal) or not granted (Add-MailboxPermission).</summary>
        AppNotGranted = 406,
        /// <summary>The sign-in was accepted but Exchange does not open the mailbox for the account that signed in ("authenticated but not connected").</summary>
        MailboxNotConnected = 407,
        /// <summary>AADSTS50126: wrong username or password.</summary>
        OauthInvalidCredentials = 500,
        /// <summary>AADSTS50034: user not found in the directory.</summary>
        OauthUserNotFound = 501,
        /// <summary>AADSTS50053: account locked.</summary>
        OauthAccountLocked = 502,
        /// <summary>AADSTS50055: password expired.</summary>
        OauthPasswordExpired = 503,
        /// <summary>AADSTS50057: account disabled.</summary>
        OauthAccountDisabled = 504,
        /// <summary>AADSTS50076 / 50079: multi-factor authentication required.</summary>
        OauthMfaRequired = 505,
        /// <summary>AADSTS53003: blocked by Conditional Access.</summary>
        OauthConditionalAccess = 506,
        /// <summary>AADSTS530035: blocked by security defaults.</summary>
        OauthSecurityDefaults = 507,
        /// <summary>AADSTS65001: admin consent missing.</summary>
        OauthConsentRequired = 508,
        /// <summary>AADSTS7000218: "Allow public client flows" is off.</summary>
        OauthPublicClientFlowsDisabled = 509,
        /// <summary>AADSTS700016: application not found in the directory.</summary>
        OauthApplicationNotFound = 510,
        /// <summary>AADSTS90002: tenant (Directory ID) not found.</summary>
        OauthTenantNotFound = 511,
        /// <summary>AADSTS50194: single-tenant application used on /common.</summary>
        OauthSingleTenantApp = 512,
        /// <summary>AADSTS7000215 / 7000222: invalid or expired client secret.</summary>
        OauthInvalidClientSecret = 513,
        /// <summary>AADSTS70011 / 28000 / 1002012: invalid scope.</summary>
        OauthInvalidScope = 514,
        /// <summary>AADSTS700082 / 70008: refresh token expired.</summary>
        OauthRefreshTokenExpired = 515,
        /// <summary>AADSTS50173: grant revoked (password changed or reset).</summary>
        OauthGrantRevoked = 516,
        /// <summary>AADSTS9002313 / 70000: invalid refresh token.</summary>
        OauthInvalidRefreshToken = 517,
        /// <summary>AADSTS900144: a request parameter is missing.</summary>
        OauthMissingParameter = 518,
        /// <summary>Device code flow: the user declined.</summary>
        OauthDeviceCodeDeclined = 519,
        /// <summary>Device code flow: the code expired before the user signed in.</summary>
        OauthDeviceCodeExpired = 520,
        /// <summary>No usable token, and getting one needs a person (device code sign-in).</summary>
        OauthSignInRequired = 521,
        /// <summary>Any other identity platform error (Microsoft's text is in `pma_last_error`).</summary>
        OauthIdentityProvider = 522,
        /// <summary>A message could not be turned into a ticket.</summary>
        Mail = 600,
        /// <summary>A ticket could not be delivered.</summary>
        Delivery = 601,
        /// <summary>The attachment's bytes are not carried: it is larger than `max_attachment_bytes` (the ticket marks it "omitted": "too_large").</summary>
        AttachmentOmitted = 602,
        /// <summary>An invariant of the library was broken (a bug: please report it).</summary>
        Internal = 900,
    }

    /// <summary>Severity of a log record (pma_log_level).</summary>
    public enum PmaLogLevel : uint
    {
        /// <summary>No records (as a threshold).</summary>
        Off = 0,
        /// <summary>Failures.</summary>
        Error = 1,
        /// <summary>Something odd that the agent worked around.</summary>
        Warn = 2,
        /// <summary>What the agent does: connections, batches, acknowledgements.</summary>
        Info = 3,
        /// <summary>Details for diagnosis.</summary>
        Debug = 4,
        /// <summary>Everything (raw protocol records that could contain secrets are never forwarded).</summary>
        Trace = 5,
    }

    /// <summary>What happened to one step of a connection test (pma_step_status).</summary>
    public enum PmaStepStatus : uint
    {
        /// <summary>The step succeeded.</summary>
        Passed = 0,
        /// <summary>The step failed: Result and Fix say why and what to do.</summary>
        Failed = 1,
        /// <summary>The step did not run because an earlier one failed.</summary>
        Skipped = 2,
    }

    /// <summary>A failed call: its code and the library's message (cause and, where an
    /// administrator can act, "(fix: ...)"). Never contains a password, secret or token.</summary>
    public class PmaException : Exception
    {
        /// <summary>The pma_result of the failed call.</summary>
        public PmaResult Code { get; private set; }

        /// <summary>The library's message for the failed call (pma_last_error).</summary>
        public string LastError { get; private set; }

        /// <summary>An exception for <paramref name="code"/> with the library's message.</summary>
        public PmaException(PmaResult code, string lastError)
            : base(PmaNative.ResultName(code) + (string.IsNullOrEmpty(lastError) ? "" : ": " + lastError))
        {
            Code = code;
            LastError = lastError ?? "";
        }
    }

    /// <summary>The raw C functions and the marshalling helpers. Prefer Agent, Batch and Report.</summary>
    public static class PmaNative
    {
        private const string Lib = "psa_mail_agent";

        /// <summary>pma_log_callback.</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void LogCallback(IntPtr userdata, PmaLogLevel level, IntPtr target, IntPtr message);

        /// <summary>pma_device_prompt, as pma_device_login_begin fills it in.</summary>
        [StructLayout(LayoutKind.Sequential)]
        public struct DevicePromptNative
        {
            public IntPtr VerificationUri;
            public IntPtr UserCode;
            public IntPtr Message;
            public ulong ExpiresInSecs;
        }

        /// <summary>pma_step, as pma_report_step fills it in.</summary>
        [StructLayout(LayoutKind.Sequential)]
        public struct Step
        {
            public IntPtr Name;
            public PmaStepStatus Status;
            public PmaResult Result;
            public ulong DurationMs;
            public IntPtr Detail;
            public IntPtr Fix;
        }

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr pma_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr pma_result_str(uint code);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_init(byte[] mailboxJson, byte[] stateDir, out AgentHandle agent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void pma_free(IntPtr agent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_set_oauth_credentials(AgentHandle agent, byte[] applicationId, byte[] directoryId, byte[] clientSecret);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_set_password(AgentHandle agent, byte[] password);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_set_client_secret(AgentHandle agent, byte[] clientSecret);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_register_sent(AgentHandle agent, byte[] messageId, byte[] ticketNumber);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_test_connection(AgentHandle agent, out ReportHandle report);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_fetch_tickets(AgentHandle agent, UIntPtr max, out BatchHandle batch);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_ack(AgentHandle agent, BatchHandle batch);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_ack_tickets(AgentHandle agent, BatchHandle batch, UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_wait_for_mail(AgentHandle agent, ulong timeoutMs, out byte arrived);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_cancel(AgentHandle agent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_device_login_begin(AgentHandle agent, out DevicePromptNative prompt);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_device_login_complete(AgentHandle agent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_last_error(AgentHandle agent, byte[] buf, UIntPtr len, out UIntPtr outN);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, EntryPoint = "pma_last_error")]
        public static extern PmaResult pma_last_error_handleless(IntPtr agent, byte[] buf, UIntPtr len, out UIntPtr outN);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pma_batch_count(BatchHandle batch);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_batch_json(BatchHandle batch, out IntPtr ptr, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_batch_ticket_json(BatchHandle batch, UIntPtr index, out IntPtr ptr, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pma_batch_attachment_count(BatchHandle batch, UIntPtr ticketIndex);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_batch_attachment(BatchHandle batch, UIntPtr ticketIndex, UIntPtr attachmentIndex, out IntPtr ptr, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_batch_raw(BatchHandle batch, UIntPtr index, out IntPtr ptr, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void pma_batch_free(IntPtr batch);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_set_log_callback(LogCallback callback, IntPtr userdata, uint maxLevel);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        [return: MarshalAs(UnmanagedType.I1)]
        public static extern bool pma_report_healthy(ReportHandle report);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_report_json(ReportHandle report, out IntPtr ptr, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr pma_report_step_count(ReportHandle report);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_report_step(ReportHandle report, UIntPtr index, out Step step);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void pma_report_free(IntPtr report);

        /// <summary>The C name of a code ("PMA_LOGIN_FAILED"; "PMA_UNKNOWN" for others).</summary>
        public static string ResultName(PmaResult code)
        {
            return FromUtf8Z(pma_result_str((uint)code));
        }

        /// <summary>NUL-terminated UTF-8 for the library; null stays null (C NULL).</summary>
        public static byte[] ToUtf8Z(string s)
        {
            if (s == null)
            {
                return null;
            }
            byte[] bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A NUL-terminated UTF-8 string owned by the library; IntPtr.Zero gives null.</summary>
        public static string FromUtf8Z(IntPtr p)
        {
            if (p == IntPtr.Zero)
            {
                return null;
            }
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0)
            {
                len++;
            }
            return FromUtf8(p, (UIntPtr)(uint)len);
        }

        /// <summary>UTF-8 text of <paramref name="len"/> bytes owned by the library.</summary>
        public static string FromUtf8(IntPtr p, UIntPtr len)
        {
            return Encoding.UTF8.GetString(CopyBytes(p, len));
        }

        /// <summary>A managed copy of bytes owned by the library.</summary>
        public static byte[] CopyBytes(IntPtr p, UIntPtr len)
        {
            ulong n = len.ToUInt64();
            if (n > int.MaxValue)
            {
                throw new OverflowException("a block of " + n + " bytes does not fit a .NET array");
            }
            byte[] bytes = new byte[(int)n];
            if (n > 0)
            {
                Marshal.Copy(p, bytes, 0, (int)n);
            }
            return bytes;
        }

        /// <summary>The message of the last failed call on <paramref name="agent"/> from any
        /// thread, or (agent null) of the calling thread's last failed call.</summary>
        internal static string LastError(AgentHandle agent)
        {
            UIntPtr needed;
            PmaResult r = agent == null
                ? pma_last_error_handleless(IntPtr.Zero, null, UIntPtr.Zero, out needed)
                : pma_last_error(agent, null, UIntPtr.Zero, out needed);
            if (r != PmaResult.BufferTooSmall)
            {
                return "";
            }
            byte[] buf = new byte[(int)needed.ToUInt32()];
            UIntPtr n;
            r = agent == null
                ? pma_last_error_handleless(IntPtr.Zero, buf, needed, out n)
                : pma_last_error(agent, buf, needed, out n);
            return r == PmaResult.Ok ? Encoding.UTF8.GetString(buf, 0, (int)n.ToUInt32()) : "";
        }

        /// <summary>Throws PmaException for a failed call made on this thread, with the
        /// library's message for it (the thread's record: exact even when other threads use
        /// the same agent).</summary>
        internal static void Check(PmaResult r)
        {
            if (r != PmaResult.Ok)
            {
                throw new PmaException(r, LastError(null));
            }
        }

        /// <summary>As Check, for batch and report accessors.</summary>
        internal static void CheckAccessor(PmaResult r, string call)
        {
            if (r != PmaResult.Ok)
            {
                string message = LastError(null);
                throw new PmaException(r, string.IsNullOrEmpty(message) ? call : message);
            }
        }
    }

    /// <summary>Owns a pma_agent; released with pma_free.</summary>
    public sealed class AgentHandle : SafeHandle
    {
        public AgentHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { PmaNative.pma_free(handle); return true; }
    }

    /// <summary>Owns a pma_batch; released with pma_batch_free.</summary>
    public sealed class BatchHandle : SafeHandle
    {
        public BatchHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { PmaNative.pma_batch_free(handle); return true; }
    }

    /// <summary>Owns a pma_report; released with pma_report_free.</summary>
    public sealed class ReportHandle : SafeHandle
    {
        public ReportHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { PmaNative.pma_report_free(handle); return true; }
    }

    /// <summary>One step of a connection test.</summary>
    public sealed class Step
    {
        /// <summary>"token", "connect", "tls", "capabilities", "authenticate" or "select".</summary>
        public string Name { get; internal set; }
        /// <summary>Passed, failed or skipped.</summary>
        public PmaStepStatus Status { get; internal set; }
        /// <summary>Ok unless the step failed; then the error's code.</summary>
        public PmaResult Result { get; internal set; }
        /// <summary>How long the step took.</summary>
        public TimeSpan Duration { get; internal set; }
        /// <summary>What was found, or what went wrong.</summary>
        public string Detail { get; internal set; }
        /// <summary>What the administrator should do about a failure, or null.</summary>
        public string Fix { get; internal set; }
    }

    /// <summary>The result of Agent.TestConnection.</summary>
    public sealed class Report : IDisposable
    {
        private readonly ReportHandle handle;

        internal Report(ReportHandle handle) { this.handle = handle; }

        /// <summary>Whether every step passed.</summary>
        public bool Healthy { get { return PmaNative.pma_report_healthy(handle); } }

        /// <summary>The report as JSON ({"healthy", "steps": [...]}).</summary>
        public string Json
        {
            get
            {
                IntPtr p;
                UIntPtr len;
                PmaNative.CheckAccessor(PmaNative.pma_report_json(handle, out p, out len), "pma_report_json");
                return PmaNative.FromUtf8(p, len);
            }
        }

        /// <summary>Every step in order.</summary>
        public Step[] Steps
        {
            get
            {
                int n = (int)PmaNative.pma_report_step_count(handle).ToUInt32();
                Step[] steps = new Step[n];
                for (int i = 0; i < n; i++)
                {
                    PmaNative.Step s;
                    PmaNative.CheckAccessor(PmaNative.pma_report_step(handle, (UIntPtr)(uint)i, out s), "pma_report_step");
                    steps[i] = new Step
                    {
                        Name = PmaNative.FromUtf8Z(s.Name),
                        Status = s.Status,
                        Result = s.Result,
                        Duration = TimeSpan.FromMilliseconds(s.DurationMs),
                        Detail = PmaNative.FromUtf8Z(s.Detail),
                        Fix = PmaNative.FromUtf8Z(s.Fix),
                    };
                }
                return steps;
            }
        }

        /// <summary>Frees the native report.</summary>
        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A person: display name and address (the ticket's "from", "to", "cc",
    /// "reply_to" entries).</summary>
    public sealed class Address
    {
        /// <summary>Display name, decoded ("Müller, Jürgen"), or null.</summary>
        public string Name { get; private set; }
        /// <summary>The address ("jm@fabrikam.com"; JSON "address"); empty when the mail had
        /// none (a warning says so).</summary>
        public string Email { get; private set; }

        internal static Address From(object value)
        {
            var o = value as Dictionary<string, object>;
            if (o == null)
            {
                return null;
            }
            return new Address { Name = JsonReader.Str(o, "name"), Email = JsonReader.Str(o, "address") ?? "" };
        }

        internal static IReadOnlyList<Address> List(Dictionary<string, object> o, string key)
        {
            var result = new List<Address>();
            var items = JsonReader.Get(o, key) as List<object>;
            if (items != null)
            {
                foreach (object item in items)
                {
                    Address a = From(item);
                    if (a != null)
                    {
                        result.Add(a);
                    }
                }
            }
            return result.AsReadOnly();
        }

        /// <summary>"Name &lt;address&gt;", or the address alone.</summary>
        public override string ToString()
        {
            return string.IsNullOrEmpty(Name) ? Email : Name + " <" + Email + ">";
        }
    }

    /// <summary>One attachment or inline part of a ticket (its "attachments" entry). The bytes
    /// come from Batch.Attachment(ticket, attachment) while the batch lives.</summary>
    public sealed class Attachment
    {
        /// <summary>Position in the ticket's attachments (the index for Batch.Attachment).</summary>
        public int Index { get; private set; }
        /// <summary>The file name the sender gave, decoded, exactly as sent (it may hold a path:
        /// show it, never use it as one), or null when the part had none.</summary>
        public string Filename { get; private set; }
        /// <summary>A safe file name to store the bytes under, always set and unique within the
        /// ticket (no directories, control or reserved characters, no Windows device names like
        /// CON, at most 200 bytes; "image.png" or "Subject.eml" when the part had no name). The
        /// spool and pma_batch_attachment_save_as use it.</summary>
        public string SaveAs { get; private set; }
        /// <summary>MIME type, e.g. "application/pdf".</summary>
        public string ContentType { get; private set; }
        /// <summary>Size of the decoded bytes (also for an omitted attachment: its real size).</summary>
        public long Size { get; private set; }
        /// <summary>An inline part (an image the HTML body shows) rather than a file.</summary>
        public bool Inline { get; private set; }
        /// <summary>Content-ID without &lt;&gt;, or null.</summary>
        public string ContentId { get; private set; }
        /// <summary>Hex SHA-256 of the decoded bytes.</summary>
        public string Sha256 { get; private set; }
        /// <summary>Why the bytes are not carried ("too_large": over max_attachment_bytes), or null.</summary>
        public string Omitted { get; private set; }
        /// <summary>Whether the bytes are not carried (Batch.Attachment then throws
        /// PmaException with PmaResult.AttachmentOmitted).</summary>
        public bool IsOmitted { get { return Omitted != null; } }

        internal static Attachment From(object value, int index)
        {
            var o = value as Dictionary<string, object>;
            if (o == null)
            {
                return null;
            }
            return new Attachment
            {
                Index = index,
                Filename = JsonReader.Str(o, "filename"),
                SaveAs = JsonReader.Str(o, "save_as"),
                ContentType = JsonReader.Str(o, "content_type") ?? "",
                Size = JsonReader.Long(o, "size"),
                Inline = JsonReader.Bool(o, "inline"),
                ContentId = JsonReader.Str(o, "content_id"),
                Sha256 = JsonReader.Str(o, "sha256") ?? "",
                Omitted = JsonReader.Str(o, "omitted"),
            };
        }
    }

    /// <summary>Where a ticket belongs (its "thread").</summary>
    public sealed class TicketThread
    {
        /// <summary>The PSA ticket this mail belongs to, or null.</summary>
        public string TicketNumber { get; private set; }
        /// <summary>In-Reply-To without &lt;&gt;, or null.</summary>
        public string InReplyTo { get; private set; }
        /// <summary>References without &lt;&gt;, oldest first.</summary>
        public IReadOnlyList<string> References { get; private set; }

        internal static TicketThread From(object value)
        {
            var o = value as Dictionary<string, object> ?? new Dictionary<string, object>();
            return new TicketThread
            {
                TicketNumber = JsonReader.Str(o, "ticket_number"),
                InReplyTo = JsonReader.Str(o, "in_reply_to"),
                References = JsonReader.Strings(o, "references"),
            };
        }
    }

    /// <summary>A ticket built from one email (the README's ticket fields, typed).</summary>
    public sealed class Ticket
    {
        /// <summary>Position in its batch (for Batch.Attachment and Batch.Raw), or -1.</summary>
        public int Index { get; private set; }
        /// <summary>"folder:uidvalidity:uid", or null (offline parse).</summary>
        public string DeliveryId { get; private set; }
        /// <summary>The mailbox name.</summary>
        public string Mailbox { get; private set; }
        /// <summary>Message-ID without &lt;&gt;, or null.</summary>
        public string MessageId { get; private set; }
        /// <summary>Stable across re-deliveries: store it and ignore a ticket seen before.</summary>
        public string DedupeKey { get; private set; }
        /// <summary>Subject, decoded.</summary>
        public string Subject { get; private set; }
        /// <summary>The sender.</summary>
        public Address From { get; private set; }
        /// <summary>Reply-To addresses.</summary>
        public IReadOnlyList<Address> ReplyTo { get; private set; }
        /// <summary>To addresses.</summary>
        public IReadOnlyList<Address> To { get; private set; }
        /// <summary>Cc addresses (empty unless the mailbox adds CCs).</summary>
        public IReadOnlyList<Address> Cc { get; private set; }
        /// <summary>The Date header in UTC, or null.</summary>
        public DateTimeOffset? Date { get; private set; }
        /// <summary>"high", "normal" or "low".</summary>
        public string Priority { get; private set; }
        /// <summary>The new text: quoted history and signature removed.</summary>
        public string Body { get; private set; }
        /// <summary>The whole text body.</summary>
        public string BodyFull { get; private set; }
        /// <summary>The HTML body, or null.</summary>
        public string BodyHtml { get; private set; }
        /// <summary>Attachments and inline parts.</summary>
        public IReadOnlyList<Attachment> Attachments { get; private set; }
        /// <summary>Where the ticket belongs.</summary>
        public TicketThread Thread { get; private set; }
        /// <summary>null, "auto_reply", "bounce", "bulk" or "loop".</summary>
        public string AutoGenerated { get; private set; }
        /// <summary>What was odd about the mail.</summary>
        public IReadOnlyList<string> Warnings { get; private set; }
        /// <summary>The ticket's JSON as the library made it.</summary>
        public string Json { get; private set; }

        /// <summary>Reads a ticket from its JSON (one object of the ticket format).</summary>
        public static Ticket Parse(string json)
        {
            return Parse(json, -1);
        }

        internal static Ticket Parse(string json, int index)
        {
            var o = JsonReader.Parse(json) as Dictionary<string, object>;
            if (o == null)
            {
                throw new FormatException("a ticket is a JSON object");
            }
            var attachments = new List<Attachment>();
            var items = JsonReader.Get(o, "attachments") as List<object>;
            if (items != null)
            {
                for (int i = 0; i < items.Count; i++)
                {
                    Attachment a = Attachment.From(items[i], i);
                    if (a != null)
                    {
                        attachments.Add(a);
                    }
                }
            }
            DateTimeOffset date;
            string dateText = JsonReader.Str(o, "date");
            bool hasDate = dateText != null && DateTimeOffset.TryParse(dateText, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal, out date);
            return new Ticket
            {
                Index = index,
                DeliveryId = JsonReader.Str(o, "delivery_id"),
                Mailbox = JsonReader.Str(o, "mailbox") ?? "",
                MessageId = JsonReader.Str(o, "message_id"),
                DedupeKey = JsonReader.Str(o, "dedupe_key") ?? "",
                Subject = JsonReader.Str(o, "subject") ?? "",
                From = Address.From(JsonReader.Get(o, "from")),
                ReplyTo = Address.List(o, "reply_to"),
                To = Address.List(o, "to"),
                Cc = Address.List(o, "cc"),
                Date = hasDate ? DateTimeOffset.Parse(dateText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : (DateTimeOffset?)null,
                Priority = JsonReader.Str(o, "priority") ?? "normal",
                Body = JsonReader.Str(o, "body") ?? "",
                BodyFull = JsonReader.Str(o, "body_full") ?? "",
                BodyHtml = JsonReader.Str(o, "body_html"),
                Attachments = attachments.AsReadOnly(),
                Thread = TicketThread.From(JsonReader.Get(o, "thread")),
                AutoGenerated = JsonReader.Str(o, "auto_generated"),
                Warnings = JsonReader.Strings(o, "warnings"),
                Json = json,
            };
        }
    }

    /// <summary>A strict reader of the JSON the library writes (RFC 8259): objects become
    /// Dictionary&lt;string, object&gt;, arrays List&lt;object&gt;, numbers double (or long when
    /// integral), strings, bools and null.</summary>
    public static class JsonReader
    {
        /// <summary>Parses one JSON value.</summary>
        public static object Parse(string text)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            int pos = 0;
            object value = ReadValue(text, ref pos, 0);
            SkipSpace(text, ref pos);
            if (pos != text.Length)
            {
                throw Error(pos, "text after the JSON value");
            }
            return value;
        }

        internal static object Get(Dictionary<string, object> o, string key)
        {
            object v;
            return o.TryGetValue(key, out v) ? v : null;
        }

        internal static string Str(Dictionary<string, object> o, string key)
        {
            return Get(o, key) as string;
        }

        internal static long Long(Dictionary<string, object> o, string key)
        {
            object v = Get(o, key);
            if (v is long)
            {
                return (long)v;
            }
            if (v is double)
            {
                return (long)(double)v;
            }
            return 0;
        }

        internal static bool Bool(Dictionary<string, object> o, string key)
        {
            object v = Get(o, key);
            return v is bool && (bool)v;
        }

        internal static IReadOnlyList<string> Strings(Dictionary<string, object> o, string key)
        {
            var result = new List<string>();
            var items = Get(o, key) as List<object>;
            if (items != null)
            {
                foreach (object item in items)
                {
                    string s = item as string;
                    if (s != null)
                    {
                        result.Add(s);
                    }
                }
            }
            return result.AsReadOnly();
        }

        private static FormatException Error(int pos, string what)
        {
            return new FormatException("JSON at offset " + pos + ": " + what);
        }

        private static void SkipSpace(string t, ref int pos)
        {
            while (pos < t.Length && (t[pos] == ' ' || t[pos] == '\t' || t[pos] == '\n' || t[pos] == '\r'))
            {
                pos++;
            }
        }

        private static object ReadValue(string t, ref int pos, int depth)
        {
            if (depth > 200)
            {
                throw Error(pos, "nested too deeply");
            }
            SkipSpace(t, ref pos);
            if (pos >= t.Length)
            {
                throw Error(pos, "unexpected end");
            }
            char c = t[pos];
            if (c == '{')
            {
                pos++;
                var o = new Dictionary<string, object>();
                SkipSpace(t, ref pos);
                if (pos < t.Length && t[pos] == '}')
                {
                    pos++;
                    return o;
                }
                while (true)
                {
                    SkipSpace(t, ref pos);
                    if (pos >= t.Length || t[pos] != '"')
                    {
                        throw Error(pos, "expected a key");
                    }
                    string key = ReadString(t, ref pos);
                    SkipSpace(t, ref pos);
                    Expect(t, ref pos, ':');
                    o[key] = ReadValue(t, ref pos, depth + 1);
                    SkipSpace(t, ref pos);
                    if (pos < t.Length && t[pos] == ',')
                    {
                        pos++;
                        continue;
                    }
                    Expect(t, ref pos, '}');
                    return o;
                }
            }
            if (c == '[')
            {
                pos++;
                var a = new List<object>();
                SkipSpace(t, ref pos);
                if (pos < t.Length && t[pos] == ']')
                {
                    pos++;
                    return a;
                }
                while (true)
                {
                    a.Add(ReadValue(t, ref pos, depth + 1));
                    SkipSpace(t, ref pos);
                    if (pos < t.Length && t[pos] == ',')
                    {
                        pos++;
                        continue;
                    }
                    Expect(t, ref pos, ']');
                    return a;
                }
            }
            if (c == '"')
            {
                return ReadString(t, ref pos);
            }
            if (Literal(t, ref pos, "true"))
            {
                return true;
            }
            if (Literal(t, ref pos, "false"))
            {
                return false;
            }
            if (Literal(t, ref pos, "null"))
            {
                return null;
            }
            return ReadNumber(t, ref pos);
        }

        private static void Expect(string t, ref int pos, char c)
        {
            if (pos >= t.Length || t[pos] != c)
            {
                throw Error(pos, "expected '" + c + "'");
            }
            pos++;
        }

        private static bool Literal(string t, ref int pos, string word)
        {
            if (string.CompareOrdinal(t, pos, word, 0, word.Length) == 0)
            {
                pos += word.Length;
                return true;
            }
            return false;
        }

        private static object ReadNumber(string t, ref int pos)
        {
            int start = pos;
            while (pos < t.Length && "+-0123456789.eE".IndexOf(t[pos]) >= 0)
            {
                pos++;
            }
            string n = t.Substring(start, pos - start);
            long l;
            if (long.TryParse(n, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l))
            {
                return l;
            }
            double d;
            if (n.Length > 0 && double.TryParse(n, NumberStyles.Float, CultureInfo.InvariantCulture, out d))
            {
                return d;
            }
            throw Error(start, "expected a value");
        }

        private static string ReadString(string t, ref int pos)
        {
            pos++; // the opening quote
            var sb = new StringBuilder();
            while (pos < t.Length)
            {
                char c = t[pos++];
                if (c == '"')
                {
                    return sb.ToString();
                }
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                if (pos >= t.Length)
                {
                    break;
                }
                char e = t[pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (pos + 4 > t.Length)
                        {
                            throw Error(pos, "short \\u escape");
                        }
                        sb.Append((char)int.Parse(t.Substring(pos, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        pos += 4;
                        break;
                    default:
                        throw Error(pos - 1, "unknown escape");
                }
            }
            throw Error(pos, "unterminated string");
        }
    }

    /// <summary>The tickets of one fetch, typed (enumerate it, or index it) and as JSON. Store
    /// them, then Agent.Ack(batch) (or AckTickets for the ones stored), then Dispose.</summary>
    public sealed class Batch : IDisposable, IEnumerable<Ticket>
    {
        internal readonly BatchHandle Handle;
        private Ticket[] tickets;

        internal Batch(BatchHandle handle) { Handle = handle; }

        /// <summary>Number of tickets (0: nothing was waiting).</summary>
        public int Count { get { return (int)PmaNative.pma_batch_count(Handle).ToUInt32(); } }

        /// <summary>Ticket <paramref name="index"/>, typed.</summary>
        public Ticket this[int index]
        {
            get
            {
                Ticket[] all = Tickets();
                if (index < 0 || index >= all.Length)
                {
                    throw new ArgumentOutOfRangeException("index");
                }
                return all[index];
            }
        }

        private Ticket[] Tickets()
        {
            if (tickets == null)
            {
                int n = Count;
                var list = new Ticket[n];
                for (int i = 0; i < n; i++)
                {
                    list[i] = Ticket.Parse(TicketJson(i), i);
                }
                tickets = list;
            }
            return tickets;
        }

        /// <summary>The tickets in order.</summary>
        public IEnumerator<Ticket> GetEnumerator()
        {
            return ((IEnumerable<Ticket>)Tickets()).GetEnumerator();
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>All tickets as one JSON array.</summary>
        public string Json
        {
            get
            {
                IntPtr p;
                UIntPtr len;
                PmaNative.CheckAccessor(PmaNative.pma_batch_json(Handle, out p, out len), "pma_batch_json");
                return PmaNative.FromUtf8(p, len);
            }
        }

        /// <summary>Ticket <paramref name="index"/> as one JSON object.</summary>
        public string TicketJson(int index)
        {
            IntPtr p;
            UIntPtr len;
            PmaNative.CheckAccessor(PmaNative.pma_batch_ticket_json(Handle, ToSize(index), out p, out len), "pma_batch_ticket_json");
            return PmaNative.FromUtf8(p, len);
        }

        /// <summary>Number of attachments of ticket <paramref name="ticket"/>.</summary>
        public int AttachmentCount(int ticket)
        {
            return (int)PmaNative.pma_batch_attachment_count(Handle, ToSize(ticket)).ToUInt32();
        }

        /// <summary>The decoded bytes (no base64) of an attachment, in the order of the
        /// ticket's "attachments" array. Throws PmaException with PmaResult.AttachmentOmitted
        /// for one over max_attachment_bytes (Attachment.IsOmitted).</summary>
        public byte[] Attachment(int ticket, int attachment)
        {
            IntPtr p;
            UIntPtr len;
            PmaNative.CheckAccessor(PmaNative.pma_batch_attachment(Handle, ToSize(ticket), ToSize(attachment), out p, out len), "pma_batch_attachment");
            return PmaNative.CopyBytes(p, len);
        }

        /// <summary>The decoded bytes of <paramref name="attachment"/> of <paramref name="ticket"/>.</summary>
        public byte[] Attachment(Ticket ticket, Attachment attachment)
        {
            if (ticket == null)
            {
                throw new ArgumentNullException("ticket");
            }
            if (attachment == null)
            {
                throw new ArgumentNullException("attachment");
            }
            return Attachment(ticket.Index, attachment.Index);
        }

        /// <summary>The raw RFC 822 message of ticket <paramref name="ticket"/> as received (to
        /// archive the .eml); the mailbox needs "keep_raw": true, else PmaException with
        /// PmaResult.RawNotKept.</summary>
        public byte[] Raw(int ticket)
        {
            IntPtr p;
            UIntPtr len;
            PmaNative.CheckAccessor(PmaNative.pma_batch_raw(Handle, ToSize(ticket), out p, out len), "pma_batch_raw");
            return PmaNative.CopyBytes(p, len);
        }

        private static UIntPtr ToSize(int i)
        {
            if (i < 0)
            {
                throw new ArgumentOutOfRangeException("index", "negative index");
            }
            return (UIntPtr)(uint)i;
        }

        /// <summary>Frees the native batch (unacknowledged tickets come again).</summary>
        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>What the person signing in with a device code must do.</summary>
    public sealed class DevicePrompt
    {
        /// <summary>The page to open, e.g. https://microsoft.com/devicelogin.</summary>
        public string VerificationUri { get; internal set; }
        /// <summary>The code to enter there.</summary>
        public string UserCode { get; internal set; }
        /// <summary>Microsoft's instruction text.</summary>
        public string Message { get; internal set; }
        /// <summary>How long the code stays valid.</summary>
        public TimeSpan ExpiresIn { get; internal set; }
    }

    /// <summary>The agent for one mailbox. Dispose logs out, releases the mailbox lock and
    /// wipes the secrets the library held.</summary>
    public sealed class Agent : IDisposable
    {
        private readonly AgentHandle handle;

        /// <summary>An agent for one entry of the configuration's "mailboxes" array;
        /// <paramref name="stateDir"/> null means "./state".</summary>
        public Agent(string mailboxJson, string stateDir = null)
        {
            if (mailboxJson == null)
            {
                throw new ArgumentNullException("mailboxJson");
            }
            AgentHandle h;
            PmaResult r = PmaNative.pma_init(PmaNative.ToUtf8Z(mailboxJson), PmaNative.ToUtf8Z(stateDir), out h);
            if (r != PmaResult.Ok)
            {
                h.Dispose();
                PmaNative.Check(r);
            }
            handle = h;
        }

        /// <summary>The library version, "MAJOR.MINOR.PATCH".</summary>
        public static string Version { get { return PmaNative.FromUtf8Z(PmaNative.pma_version()); } }

        /// <summary>Registers a mail the PSA sent (Message-ID, with or without &lt;&gt;) for a
        /// ticket, so replies that keep only In-Reply-To/References are threaded to it.</summary>
        public void RegisterSent(string messageId, string ticketNumber)
        {
            if (messageId == null)
            {
                throw new ArgumentNullException("messageId");
            }
            if (ticketNumber == null)
            {
                throw new ArgumentNullException("ticketNumber");
            }
            PmaNative.Check(PmaNative.pma_register_sent(handle, PmaNative.ToUtf8Z(messageId),
                PmaNative.ToUtf8Z(ticketNumber)));
        }

        /// <summary>Enables OAuth 2.0 with the app registration's Application (client) ID and
        /// Directory (tenant) ID; <paramref name="clientSecret"/> only for app-only access.</summary>
        public void SetOAuthCredentials(string applicationId, string directoryId, string clientSecret = null)
        {
            if (applicationId == null)
            {
                throw new ArgumentNullException("applicationId");
            }
            if (directoryId == null)
            {
                throw new ArgumentNullException("directoryId");
            }
            byte[] secret = PmaNative.ToUtf8Z(clientSecret);
            try
            {
                PmaNative.Check(PmaNative.pma_set_oauth_credentials(handle, PmaNative.ToUtf8Z(applicationId),
                    PmaNative.ToUtf8Z(directoryId), secret));
            }
            finally
            {
                // The library keeps its own copy; do not leave one in the managed heap.
                if (secret != null)
                {
                    Array.Clear(secret, 0, secret.Length);
                }
            }
        }

        /// <summary>Tests the connection step by step; a failing step is in the report, not thrown.</summary>
        public Report TestConnection()
        {
            ReportHandle r;
            PmaResult rc = PmaNative.pma_test_connection(handle, out r);
            if (rc != PmaResult.Ok)
            {
                r.Dispose();
                PmaNative.Check(rc);
            }
            return new Report(r);
        }

        /// <summary>Fetches up to <paramref name="max"/> new tickets (an empty batch: nothing waiting).</summary>
        public Batch Fetch(int max = 50)
        {
            if (max < 1)
            {
                throw new ArgumentOutOfRangeException("max", "ask for at least one ticket");
            }
            BatchHandle b;
            PmaResult rc = PmaNative.pma_fetch_tickets(handle, (UIntPtr)(uint)max, out b);
            if (rc != PmaResult.Ok)
            {
                b.Dispose();
                PmaNative.Check(rc);
            }
            return new Batch(b);
        }

        /// <summary>Acknowledges a batch after its tickets were stored.</summary>
        public void Ack(Batch batch)
        {
            if (batch == null)
            {
                throw new ArgumentNullException("batch");
            }
            PmaNative.Check(PmaNative.pma_ack(handle, batch.Handle));
        }

        /// <summary>Acknowledges the first <paramref name="count"/> tickets of a batch (the ones
        /// the PSA stored before something failed); the others are delivered again by the next
        /// Fetch. The batch is then settled (a second acknowledgement throws
        /// PmaResult.AlreadyAcked).</summary>
        public void AckTickets(Batch batch, int count)
        {
            if (batch == null)
            {
                throw new ArgumentNullException("batch");
            }
            if (count < 0)
            {
                throw new ArgumentOutOfRangeException("count", "negative count");
            }
            PmaNative.Check(PmaNative.pma_ack_tickets(handle, batch.Handle, (UIntPtr)(uint)count));
        }

        /// <summary>Sets the mailbox password from the host's own store. The library keeps a
        /// copy (wiped when replaced or disposed); a different password drops the tokens obtained
        /// with the old one.</summary>
        public void SetPassword(string password)
        {
            SetSecret(password, "password", true);
        }

        /// <summary>Sets the OAuth client secret from the host's own store, like SetPassword.</summary>
        public void SetClientSecret(string clientSecret)
        {
            SetSecret(clientSecret, "clientSecret", false);
        }

        private void SetSecret(string value, string name, bool password)
        {
            if (value == null)
            {
                throw new ArgumentNullException(name);
            }
            byte[] bytes = PmaNative.ToUtf8Z(value);
            try
            {
                PmaNative.Check(password
                    ? PmaNative.pma_set_password(handle, bytes)
                    : PmaNative.pma_set_client_secret(handle, bytes));
            }
            finally
            {
                // The library keeps its own copy; do not leave one in the managed heap.
                Array.Clear(bytes, 0, bytes.Length);
            }
        }

        /// <summary>Waits for new mail (IMAP IDLE, or polling where the server has none) at most
        /// <paramref name="timeout"/>; true when there is mail to fetch.</summary>
        public bool WaitForMail(TimeSpan timeout)
        {
            if (timeout < TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException("timeout", "negative timeout");
            }
            byte arrived;
            PmaNative.Check(PmaNative.pma_wait_for_mail(handle, (ulong)timeout.TotalMilliseconds, out arrived));
            return arrived != 0;
        }

        /// <summary>From any thread: ends the blocking call in progress on this agent (it
        /// throws PmaException with PmaResult.Cancelled). Never blocks; with nothing in
        /// progress it has no effect.</summary>
        public void Cancel()
        {
            PmaNative.Check(PmaNative.pma_cancel(handle));
        }

        /// <summary>Begins a device-code sign-in: what the person must do, for the host's own UI.</summary>
        public DevicePrompt DeviceLoginBegin()
        {
            PmaNative.DevicePromptNative p;
            PmaNative.Check(PmaNative.pma_device_login_begin(handle, out p));
            return new DevicePrompt
            {
                VerificationUri = PmaNative.FromUtf8Z(p.VerificationUri),
                UserCode = PmaNative.FromUtf8Z(p.UserCode),
                Message = PmaNative.FromUtf8Z(p.Message),
                ExpiresIn = TimeSpan.FromSeconds(p.ExpiresInSecs),
            };
        }

        /// <summary>Waits until the person signed in with the code of DeviceLoginBegin; the
        /// tokens are then cached and renewed without a person. Cancel (or the async version's
        /// token) ends the wait; the sign-in stays pending and may be completed later.</summary>
        public void DeviceLoginComplete()
        {
            PmaNative.Check(PmaNative.pma_device_login_complete(handle));
        }

        /// <summary>TestConnection on the thread pool; <paramref name="cancellationToken"/>
        /// ends it (OperationCanceledException).</summary>
        public Task<Report> TestConnectionAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => TestConnection(), cancellationToken);
        }

        /// <summary>Fetch on the thread pool; <paramref name="cancellationToken"/> ends it
        /// (nothing is handed out).</summary>
        public Task<Batch> FetchAsync(int max = 50, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => Fetch(max), cancellationToken);
        }

        /// <summary>Ack on the thread pool; a cancelled acknowledgement leaves the batch
        /// unacknowledged (it may be acknowledged again).</summary>
        public Task AckAsync(Batch batch, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => { Ack(batch); return true; }, cancellationToken);
        }

        /// <summary>AckTickets on the thread pool.</summary>
        public Task AckTicketsAsync(Batch batch, int count, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => { AckTickets(batch, count); return true; }, cancellationToken);
        }

        /// <summary>WaitForMail on the thread pool; <paramref name="cancellationToken"/> ends
        /// the wait at once (a service stopping, a host shutting down).</summary>
        public Task<bool> WaitForMailAsync(TimeSpan timeout, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => WaitForMail(timeout), cancellationToken);
        }

        /// <summary>DeviceLoginBegin on the thread pool.</summary>
        public Task<DevicePrompt> DeviceLoginBeginAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => DeviceLoginBegin(), cancellationToken);
        }

        /// <summary>DeviceLoginComplete on the thread pool; <paramref name="cancellationToken"/>
        /// ends the wait (the sign-in stays pending).</summary>
        public Task DeviceLoginCompleteAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(() => { DeviceLoginComplete(); return true; }, cancellationToken);
        }

        /// <summary>Runs a blocking call on the thread pool. A cancelled token calls pma_cancel
        /// until the call returned: a cancel ends only a call already in progress, and the
        /// token may fire a moment before the call entered the library.</summary>
        private Task<T> Run<T>(Func<T> call, CancellationToken cancellationToken)
        {
            return Task.Run(() =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                var done = new CallDone();
                using (cancellationToken.Register(() => CancelUntil(done)))
                {
                    try
                    {
                        return call();
                    }
                    catch (PmaException e) when (e.Code == PmaResult.Cancelled && cancellationToken.IsCancellationRequested)
                    {
                        throw new OperationCanceledException(e.Message, e, cancellationToken);
                    }
                    finally
                    {
                        done.Set();
                    }
                }
            }, cancellationToken);
        }

        private sealed class CallDone
        {
            private int done;
            public bool IsSet { get { return Volatile.Read(ref done) != 0; } }
            public void Set() { Volatile.Write(ref done, 1); }
        }

        private void CancelUntil(CallDone done)
        {
            Task.Run(() =>
            {
                while (!done.IsSet)
                {
                    try
                    {
                        PmaNative.pma_cancel(handle);
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    System.Threading.Thread.Sleep(50);
                }
            });
        }

        /// <summary>The message of the last failed call on this agent, from any thread
        /// (PmaException.LastError holds the one of the call that threw).</summary>
        public string LastError { get { return PmaNative.LastError(handle); } }

        /// <summary>Frees the native agent.</summary>
        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>Forwards the library's log records to a .NET handler (process-wide).</summary>
    public static class PmaLog
    {
        // Kept in a static field: the native side holds only a function pointer, and a
        // collected delegate would crash the process at the next record.
#pragma warning disable 414 // written only: its purpose is to keep the delegate reachable
        private static PmaNative.LogCallback native;
#pragma warning restore 414
        private static Action<PmaLogLevel, string, string> handler;
        private static readonly object gate = new object();

        /// <summary>Sends records up to <paramref name="maxLevel"/> to <paramref name="onRecord"/>
        /// (level, target, message); null stops forwarding. The handler runs on the library's
        /// threads and must be thread-safe; exceptions it throws are swallowed (an exception
        /// must never cross into native code).</summary>
        public static void SetHandler(Action<PmaLogLevel, string, string> onRecord, PmaLogLevel maxLevel)
        {
            lock (gate)
            {
                PmaNative.LogCallback cb = onRecord == null ? null : new PmaNative.LogCallback(Forward);
                handler = onRecord;
                PmaResult r = PmaNative.pma_set_log_callback(cb, IntPtr.Zero, (uint)maxLevel);
                if (r != PmaResult.Ok)
                {
                    throw new PmaException(r, "pma_set_log_callback");
                }
                // Only after the library stopped using the previous delegate may it be collected.
                native = cb;
            }
        }

        private static void Forward(IntPtr userdata, PmaLogLevel level, IntPtr target, IntPtr message)
        {
            try
            {
                Action<PmaLogLevel, string, string> h = handler;
                if (h != null)
                {
                    h(level, PmaNative.FromUtf8Z(target), PmaNative.FromUtf8Z(message));
                }
            }
            catch (Exception)
            {
                // Swallowed on purpose: unwinding a .NET exception through native frames is undefined.
            }
        }
    }
}
