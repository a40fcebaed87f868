; Inno Setup script: the Windows installer for the frozen Inspector application.
;
; packaging/build.py runs it after PyInstaller when Inno Setup 6 (iscc.exe) is
; installed, with the defines below. By hand, from the repository root:
;   iscc /DAppVersion=0.1.0 /DSourceDir=packaging\dist\inspector-app ^
;        /DOutputDir=packaging\dist /DIconFile=packaging\build\icon.ico packaging\windows\inspector.iss
;
; Installs per machine into Program Files, adds a Start-menu entry (and an
; optional desktop icon) and registers an uninstaller. The user's settings,
; history database and models (in %APPDATA% / %LOCALAPPDATA%\Inspector) are
; never touched by installing or uninstalling.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (packaging/build.py does)
#endif
#ifndef SourceDir
  #define SourceDir "..\dist\inspector-app"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\build\icon.ico"
#endif

[Setup]
; AppId identifies the application for upgrades and the uninstaller: never change it.
AppId={{6C1E4F5A-3D2B-4E7A-9A51-8F0B2C7D4E13}
AppName=Inspector
AppVersion={#AppVersion}
AppVerName=Inspector {#AppVersion}
AppPublisher=Inspector contributors
DefaultDirName={autopf}\Inspector
DefaultGroupName=Inspector
DisableProgramGroupPage=yes
OutputDir={#OutputDir}
OutputBaseFilename=inspector-{#AppVersion}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\inspector-app.exe
Compression=lzma2/normal
SolidCompression=no
; The CUDA build compresses to more than 2.1 GB, the most one setup .exe can
; hold: the data goes into setup-N.bin slices that stay beside the .exe.
DiskSpanning=yes
DiskSliceSize=max
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Inspector"; Filename: "{app}\inspector-app.exe"
Name: "{group}\Inspector self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\inspector-app-console.exe"" --self-test"
Name: "{group}\{cm:UninstallProgram,Inspector}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Inspector"; Filename: "{app}\inspector-app.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\inspector-app.exe"; Description: "{cm:LaunchProgram,Inspector}"; Flags: nowait postinstall skipifsilent
