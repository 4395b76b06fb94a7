; Inno Setup script for Trainer GUI: a per-machine or per-user installer of the PyInstaller
; one-folder build (dist\pyinstaller\trainer-gui, from packaging\trainer_gui.spec).
;
;   iscc /DAppVersion=X.Y.Z packaging\windows\trainer-gui.iss
;     -> dist\Trainer-GUI-X.Y.Z-windows-x64-setup.exe
;
; The version is passed in, never written here: the release workflow reads it from the installed
; package (importlib.metadata), the same string `trainer-gui --version` prints.
; Signing hook: define SignTool in the Inno Setup IDE/command line (iscc /Ssigntool=...) and
; uncomment SignTool below; see docs/packaging.md.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (see docs/packaging.md)
#endif
#define AppName "Trainer GUI"
#define GuiExe "Trainer GUI.exe"
#define CliExe "trainer-gui.exe"
#define BuildDir "..\..\dist\pyinstaller\trainer-gui"

[Setup]
; AppId identifies the app across versions (upgrades, uninstall entry): never change it.
AppId={{7572FEBB-71FA-4BCE-A5A6-5007D1B9A6D3}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Trainer GUI contributors
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Install for all users (admin) or only for the current user, the user's choice.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=Trainer-GUI-{#AppVersion}-windows-x64-setup
SetupIconFile=..\icons\trainer-gui.ico
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
; Close a running copy before replacing its files.
CloseApplications=yes
;SignTool=signtool

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BuildDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#GuiExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#GuiExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Python may write __pycache__ next to the training driver when jobs run it from the install folder.
Type: filesandordirs; Name: "{app}\_internal\trainer_gui\core\contract\__pycache__"
Type: filesandordirs; Name: "{app}\_internal\trainer_gui\core\serving\__pycache__"
