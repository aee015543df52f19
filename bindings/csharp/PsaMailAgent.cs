// P/Invoke binding of the psa-mail-agent C API (include/psa_mail_agent.h) for .NET.
//
// Targets: netstandard2.0-compatible code (C# 7.3, no newer language or library features):
// .NET Framework 4.6.1+ / Mono, .NET Core 2.0+, .NET 6+. The native library is found as
// "psa_mail_agent" (libpsa_mail_agent.so, libpsa_mail_agent.dylib, psa_mail_agent.dll).
//
// UTF-8 is marshalled by hand (byte arrays in, pointer + length out), so nothing depends on
// UnmanagedType.LPUTF8Str. Handles are SafeHandles (freed exactly once, even by the
// finalizer); every failed call throws PmaException with the code and the library's message.
// An Agent may be used from several threads (the library serialises its calls); Batch and
// Report are immutable.
using System;
using System.Runtime.InteropServices;
using System.Text;

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
        /// <summary>XOAUTH2 rejected for a shared mailbox: the user lacks Full Access to it.</summary>
        SharedMailboxDenied = 402,
        /// <summary>The server is temporarily unavailable; retry later.</summary>
        ServerUnavailable = 403,
        /// <summary>The search folder or the processed folder does not exist.</summary>
        FolderNotFound = 404,
        /// <summary>The server refused a command (NO/BAD).</summary>
        ServerRefused = 405,
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
        public static extern PmaResult pma_register_sent(AgentHandle agent, byte[] messageId, byte[] ticketNumber);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_test_connection(AgentHandle agent, out ReportHandle report);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_fetch_tickets(AgentHandle agent, UIntPtr max, out BatchHandle batch);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern PmaResult pma_ack(AgentHandle agent, BatchHandle batch);
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

        /// <summary>Throws PmaException for a failed call on <paramref name="agent"/>
        /// (null: a failed pma_init on this thread).</summary>
        internal static void Check(PmaResult r, AgentHandle agent)
        {
            if (r != PmaResult.Ok)
            {
                throw new PmaException(r, LastError(agent));
            }
        }

        /// <summary>Accessors of batches and reports record no message: name the call.</summary>
        internal static void CheckAccessor(PmaResult r, string call)
        {
            if (r != PmaResult.Ok)
            {
                throw new PmaException(r, call);
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

    /// <summary>The tickets of one fetch. Store them, then Agent.Ack(batch), then Dispose.</summary>
    public sealed class Batch : IDisposable
    {
        internal readonly BatchHandle Handle;

        internal Batch(BatchHandle handle) { Handle = handle; }

        /// <summary>Number of tickets (0: nothing was waiting).</summary>
        public int Count { get { return (int)PmaNative.pma_batch_count(Handle).ToUInt32(); } }

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
        /// ticket's "attachments" array.</summary>
        public byte[] Attachment(int ticket, int attachment)
        {
            IntPtr p;
            UIntPtr len;
            PmaNative.CheckAccessor(PmaNative.pma_batch_attachment(Handle, ToSize(ticket), ToSize(attachment), out p, out len), "pma_batch_attachment");
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
                PmaNative.Check(r, null);
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
                PmaNative.ToUtf8Z(ticketNumber)), handle);
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
                    PmaNative.ToUtf8Z(directoryId), secret), handle);
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
                PmaNative.Check(rc, handle);
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
                PmaNative.Check(rc, handle);
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
            PmaNative.Check(PmaNative.pma_ack(handle, batch.Handle), handle);
        }

        /// <summary>The message of the last failed call on this agent.</summary>
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
