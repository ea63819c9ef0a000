// Why the add-on asks for each permission: the options page lists these, the README's table says
// the same, and a test keeps this list equal to the manifest's (nothing asked for unexplained).

/** [permission, the _locales key of its explanation], in the manifest's order. */
export const PERMISSION_REASONS = [
  ["accountsFolders", "permission_accountsFolders"],
  ["accountsRead", "permission_accountsRead"],
  ["alarms", "permission_alarms"],
  ["compose", "permission_compose"],
  ["compose.send", "permission_composeSend"],
  ["declarativeNetRequestWithHostAccess", "permission_blockOwnPixels"],
  ["messagesDelete", "permission_messagesDelete"],
  ["messagesImport", "permission_messagesImport"],
  ["messagesMove", "permission_messagesMove"],
  ["messagesRead", "permission_messagesRead"],
  ["messagesTags", "permission_messagesTags"],
  ["messagesTagsList", "permission_messagesTags"],
  ["messagesUpdate", "permission_messagesUpdate"],
  ["nativeMessaging", "permission_nativeMessaging"],
  ["notifications", "permission_notifications"],
  ["storage", "permission_storage"],
  ["webRequest", "permission_webRequest"],
  ["webRequestBlocking", "permission_webRequest"],
];
